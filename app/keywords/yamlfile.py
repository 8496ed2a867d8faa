"""Values out of keywords.yaml's YAML tree, each checked, each problem kept with its line.

``problems.read_yaml`` turns the text into a tree that keeps every node's line
(language files are read with it too); ``YamlReader`` asks that tree for the
shapes keywords.yaml is made of (a mapping, text, true or false, a list of
keywords) and, rather than stopping at the first wrong value, records a
``Problem`` and goes on, so one load reports every mistake in the file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from app.keywords.model import Keyword, Origin
from app.keywords.problems import Problem, key_line, kind_of, unknown_keys, value_line
from app.keywords.text import key

_ID = re.compile(r"[a-z0-9][a-z0-9_]{0,63}")


class YamlReader:
    """Reads typed values from the YAML tree, collecting every problem with its line."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []
        #: The line of every reply read, by its path ("opt_out.reply"), for messages.
        self.reply_lines: dict[str, int] = {}

    def error(self, line: int, message: str) -> None:
        self.errors.append(Problem(self.path, line, message))

    def warn(self, line: int, message: str) -> None:
        problem = Problem(self.path, line, message, warning=True)
        if problem not in self.warnings:
            self.warnings.append(problem)

    def keys(
        self,
        node: CommentedMap,
        where: str,
        allowed: Iterable[str],
        required: Iterable[str] = (),
        line: int | None = None,
    ) -> None:
        for problem_line, message in unknown_keys(node, where, allowed):
            self.error(problem_line, message)
        for name in required:
            if name not in node:
                self.error(
                    line if line is not None else first_line(node),
                    f"{where}{name}: missing; it is required here",
                )

    def mapping(self, node: Any, where: str, line: int) -> CommentedMap | None:
        if node is None:
            return None
        if not isinstance(node, CommentedMap):
            self.error(
                line, f"{where}: expected a mapping (name: value lines), got {kind_of(node)}"
            )
            return None
        return node

    def text(self, node: CommentedMap, name: str, where: str, required: bool = True) -> str | None:
        if name not in node:
            return None
        value = node[name]
        line = value_line(node, name)
        if not isinstance(value, str) or (required and not value.strip()):
            self.error(line, f"{where}: expected text, got {kind_of(value)}")
            return None
        return value.strip()

    def reply(self, node: CommentedMap, name: str, where: str) -> str | None:
        """A reply template; remembers its line for the checks made later."""
        if name in node:
            self.reply_lines[where] = value_line(node, name)
        return self.text(node, name, where, required=False)

    def boolean(self, node: CommentedMap, name: str, where: str, default: bool) -> bool:
        if name not in node:
            return default
        value = node[name]
        if not isinstance(value, bool):
            self.error(
                value_line(node, name), f"{where}: expected true or false, got {kind_of(value)}"
            )
            return default
        return value

    def keyword_list(
        self, node: CommentedMap, name: str, where: str, scope: str
    ) -> tuple[Keyword, ...] | None:
        """The keywords listed at ``name``, each with its origin: ``scope`` and ``where``."""
        if name not in node:
            return None
        value = node[name]
        line = value_line(node, name)
        if not isinstance(value, CommentedSeq) or not value:
            self.error(line, f"{where}: expected a list of keywords, such as [STOP, END]")
            return None
        keywords = []
        for index, item in enumerate(value):
            item_line = value.lc.item(index)[0] + 1
            if not isinstance(item, str) or not key(item):
                self.error(
                    item_line,
                    f"{where}[{index}]: expected a keyword with letters or digits, "
                    f"got {kind_of(item)}",
                )
                continue
            if len(item) > 40:
                self.error(item_line, f"{where}[{index}]: a keyword is at most 40 characters")
                continue
            keywords.append(Keyword(item.strip(), key(item), Origin(scope, where, item_line)))
        return tuple(keywords)

    def entries(
        self,
        section: CommentedMap,
        where: str,
        what: str,
        example: str,
        expected: tuple[str, ...],
    ) -> Iterator[tuple[str, CommentedMap, int, str]]:
        """The (id, body, line, path) of each well-formed entry of an id-keyed section."""
        for entry_id, body in section.items():
            line = key_line(section, entry_id)
            path = f"{where}.{entry_id}"
            if not isinstance(entry_id, str) or not _ID.fullmatch(entry_id):
                self.error(
                    line,
                    f"{path}: a {what} id is lower-case letters, digits and underscores, "
                    f"such as {example}",
                )
                continue
            if body is None:
                self.error(line, f"{path}: expected {' and '.join(expected)}")
                continue
            entry = self.mapping(body, path, line)
            if entry is not None:
                yield entry_id, entry, line, path


def first_line(node: Any) -> int:
    """The line a YAML node starts on; 1 for a value that has none (a plain scalar)."""
    try:
        return int(node.lc.line) + 1
    except AttributeError:
        return 1
