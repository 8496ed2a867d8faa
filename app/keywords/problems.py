"""What is wrong in a keywords file (keywords.yaml or a language file), with its line."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError

from app.errors import OptgateError


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or worth a warning) in a file, with its line."""

    path: str
    line: int
    message: str
    warning: bool = False

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {'warning: ' if self.warning else ''}{self.message}"


class ConfigError(OptgateError):
    """keywords.yaml cannot be used; ``problems`` lists every error, in line order."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.path, p.line))
        super().__init__("\n".join(str(problem) for problem in self.problems))


def read_yaml(text: str, path: str) -> Any:
    """The YAML document in ``text``, kept with its line numbers.

    Raises:
        ConfigError: not valid YAML (a duplicate key included), with its line.
    """
    try:
        return YAML(typ="rt").load(text)
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark else 0
        what = (error.problem or "").strip() or str(error).splitlines()[0]
        if "found duplicate key" in str(error):
            what = f"a key appears twice ({_duplicate_key(str(error))}); keep one"
        raise ConfigError([Problem(path, line, f"not valid YAML: {what}")]) from None


def _duplicate_key(message: str) -> str:
    found = re.search(r'found duplicate key "([^"]*)"', message)
    return f'"{found.group(1)}"' if found else "a key"


def kind_of(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def key_line(node: Any, name: Any) -> int:
    try:
        return int(node.lc.key(name)[0]) + 1
    except (AttributeError, KeyError, TypeError):
        return 1


def value_line(node: Any, name: Any) -> int:
    try:
        return int(node.lc.value(name)[0]) + 1
    except (AttributeError, KeyError, TypeError):
        return key_line(node, name)


def unknown_keys(node: Any, where: str, allowed: Iterable[str]) -> Iterator[tuple[int, str]]:
    """(line, message) for each key of the mapping ``node`` that is not ``allowed``,
    suggesting the allowed key it looks most like."""
    allowed = tuple(allowed)
    for name in node:
        if name not in allowed:
            hint = difflib.get_close_matches(str(name), allowed, n=1, cutoff=0.6)
            suggestion = f'did you mean "{hint[0]}"? ' if hint else ""
            yield (
                key_line(node, name),
                f"{where}{name}: unknown key; {suggestion}allowed here: {', '.join(allowed)}",
            )
