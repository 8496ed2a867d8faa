"""Keywords: the keywords.yaml rules and the matcher that reads inbound texts.

    from app.keywords import load, Matcher
    matcher = Matcher(load(Path("keywords.yaml")))
    matcher.match("stop price drop", line="+14155550100")  # -> Intent

Pure: no Flask, no database. ``store.KeywordStore`` reloads an edited file
in a running service.
"""

from app.keywords.config import load, parse
from app.keywords.intent import Action, Intent
from app.keywords.matcher import Matcher
from app.keywords.model import Config
from app.keywords.problems import ConfigError, Problem

__all__ = ["Action", "Config", "ConfigError", "Intent", "Matcher", "Problem", "load", "parse"]
