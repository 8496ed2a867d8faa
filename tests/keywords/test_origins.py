"""A keyword keeps where it was written; an override's checks tell its own from inherited ones."""

from __future__ import annotations

import pytest

from app.keywords import ConfigError, parse
from app.keywords.model import DEFAULTS, Origin
from tests.keywords.test_config import MINIMAL

HOURS = "responders:\n  hours:\n    keywords: [HOURS]\n    reply: ok\n"


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        parse(text, "k.yaml")
    return [str(problem) for problem in raised.value.problems]


def test_an_inherited_keyword_keeps_its_origin_in_the_defaults() -> None:
    config = parse(
        MINIMAL + HOURS + "overrides:\n  - groups: [MG1]\n    help:\n      keywords: [HELP, AIDE]\n"
    )
    rules = config.overrides[0].rules

    assert rules.responders["hours"].keywords[0].origin == Origin(
        DEFAULTS, "responders.hours.keywords", 13
    )
    assert rules.opt_out.keywords == config.defaults.opt_out.keywords
    assert {keyword.origin for keyword in rules.help.keywords} == {
        Origin("overrides[0]", "overrides[0].help.keywords", 18)
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            MINIMAL + HOURS + "overrides:\n  - groups: [MG1]\n    opt_in:\n"
            "      keywords: [START, HOURS]\n",
            'k.yaml:13: responders.hours.keywords: "HOURS" appears twice in one scope: here and '
            "in overrides[0].opt_in.keywords (line 18); keep one",
            id="an override keyword clashing with an inherited one names both places",
        ),
        pytest.param(
            MINIMAL + HOURS + "overrides:\n  - groups: [MG1]\n    responders:\n      b:\n"
            "        keywords: [hours!]\n        reply: ok\n",
            'k.yaml:19: overrides[0].responders.b.keywords: "hours!" appears twice in one scope: '
            "here and in responders.hours.keywords (line 13); keep one",
            id="an override responder clashing with an inherited one is reported in the override",
        ),
        pytest.param(
            MINIMAL + "responders:\n  now:\n    keywords: [STOP NOW]\n    reply: ok\n"
            "overrides:\n  - groups: [MG1]\n    brand: Other\n  - groups: [MG2]\n    brand: More\n",
            'k.yaml:13: responders.now.keywords: "STOP NOW" starts with the opt-out keyword STOP, '
            "which always wins: choose another first word",
            id="what the defaults refused is not reported again for each override",
        ),
    ],
)
def test_an_override_reports_each_problem_once_in_its_place(text: str, expected: str) -> None:
    assert problems(text) == [expected]


def test_an_override_may_replace_an_inherited_responder_with_the_same_keyword() -> None:
    text = MINIMAL + HOURS + "overrides:\n  - groups: [MG1]\n    responders:\n      hours:\n"
    text += "        keywords: [HOURS]\n        reply: closed\n"

    config = parse(text)

    assert config.overrides[0].rules.responders["hours"].reply == "closed"
