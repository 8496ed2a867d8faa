"""Every case in cases.py against the shipped keywords.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.keywords.cases import CASES, NONE, Case

KEYWORDS_YAML = Path(__file__).resolve().parents[2] / "keywords.yaml"


def case_id(case: Case) -> str:
    text = repr(case.text)
    return text if len(text) <= 40 else text[:37] + "..."


@pytest.fixture(scope="module")
def matcher() -> Any:
    """The matcher for the shipped file, built once for the module."""
    from app.keywords import Matcher, load

    return Matcher(load(KEYWORDS_YAML))


@pytest.mark.parametrize("case", CASES, ids=[case_id(case) for case in CASES])
def test_intent(matcher: Any, case: Case) -> None:
    intent = matcher.match(case.text)
    got = (intent.action, intent.topic, intent.responder, intent.needs_review)
    expected = (case.action, case.topic, case.responder, case.needs_review)
    assert got == expected, f"{case.text!r}: {case.note}" if case.note else repr(case.text)


def test_enough_cases() -> None:
    assert len(CASES) >= 300
    unchanged = [c for c in CASES if c.action == NONE and not c.needs_review]
    assert len(unchanged) >= 80


def test_cases_are_unique() -> None:
    """One text, one expectation: a duplicate is a copy-paste slip or a contradiction."""
    seen: dict[str, Case] = {}
    duplicates = [c.text for c in CASES if seen.setdefault(c.text, c) is not c]
    assert not duplicates


def test_cases_are_well_formed() -> None:
    actions = {"opt_out", "opt_in", "topic_opt_out", "topic_opt_in", "help", "responder", "none"}
    for case in CASES:
        assert case.action in actions, case
        assert (case.topic is not None) == case.action.startswith("topic_"), case
        # Review goes with "none", or with a topic command that says more than we
        # understood ("stop texting me about price drops").
        assert not case.needs_review or case.action in (NONE, "topic_opt_out", "topic_opt_in")
