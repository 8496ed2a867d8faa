"""What an inbound text asks for."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Action(StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    TOPIC_OPT_OUT = "topic_opt_out"
    TOPIC_OPT_IN = "topic_opt_in"
    HELP = "help"
    #: A custom responder answered (HOURS); consent does not change.
    RESPONDER = "responder"
    NONE = "none"


@dataclass(frozen=True)
class Intent:
    """The matcher's answer for one text on one line.

    Attributes:
        action: what the contact asks for.
        topic: the topic of a topic command (the first, when a text names several).
        topics: every topic the text names, in order.
        responder: the id of the custom responder that matched, if any.
        reply: the rendered answer, or None when nothing should be answered.
        needs_review: the text may be a revocation in words; a person decides (R10).
        keyword: the config keyword that matched, as written there.
        exact: the whole text was that keyword (what a provider's own filter acts on).
        language: the language (ISO 639 code) of the phrase that matched, when it was one of
            a language file's (``reply`` is then in that language where keywords.yaml
            gives one); None for keywords and the rules of phrases.py.
    """

    action: Action
    topic: str | None = None
    topics: tuple[str, ...] = ()
    responder: str | None = None
    reply: str | None = None
    needs_review: bool = False
    keyword: str | None = None
    exact: bool = False
    language: str | None = None

    def as_dict(self, text: str) -> dict[str, Any]:
        """The JSON form `optgate keywords test` prints (and the API will answer)."""
        return {
            "text": text,
            "action": self.action.value,
            "topic": self.topic,
            "responder": self.responder,
            "reply": self.reply,
            "needs_review": self.needs_review,
        }


NO_INTENT = Intent(Action.NONE)
