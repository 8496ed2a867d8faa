"""keywords.yaml validation: every rule gives its message and its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.keywords import ConfigError, load, parse
from app.sending.limits import Limit, Limits
from tests.conftest import SHIPPED_KEYWORDS

MINIMAL = """\
brand: Acme
opt_out:
  keywords: [STOP, QUIT, END, REVOKE, OPT OUT, CANCEL, UNSUBSCRIBE]
  reply: "{brand}: You are unsubscribed. Reply START to resubscribe."
opt_in:
  keywords: [START]
  reply: "{brand}: Subscribed. Msg & data rates may apply. Reply STOP to stop."
help:
  keywords: [HELP]
  reply: "{brand}: Call 1-800-555-0100. Reply STOP to stop."
"""
TOPICS = """\
topic_replies:
  opt_out: "{brand}: no more {topic}."
  opt_in: "{brand}: {topic} again. Reply STOP {keyword} to stop."
  opt_in_while_opted_out: "{brand}: text START first."
topics:
  price_drop:
    name: Price Reduction notifications
    phrases: [PRICE DROP]
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        parse(text, "k.yaml")
    return [str(problem) for problem in raised.value.problems]


def with_lines(*replacements: tuple[int, str], extra: str = "", base: str = MINIMAL) -> str:
    """MINIMAL with lines replaced (1-based) and ``extra`` appended."""
    lines = base.splitlines()
    for number, text in replacements:
        lines[number - 1] = text
    return "\n".join(lines) + "\n" + extra


CASES = [
    pytest.param(
        with_lines(extra="organisation:\n  opt_out_scope: line\n"),
        'k.yaml:11: organisation: unknown key; did you mean "organization"? allowed here: ',
        id="unknown key with did-you-mean",
    ),
    pytest.param(
        with_lines(extra="responders:\n  hours:\n    keywords: [HOURS]\n    reply: x\n"
                         "    acton: opt_in\n"),
        'k.yaml:15: responders.hours.acton: unknown key; did you mean "action"?',
        id="unknown nested key",
    ),
    pytest.param(
        with_lines((3, "  keywords: [QUIT, END, REVOKE, OPT OUT, CANCEL, UNSUBSCRIBE]")),
        "k.yaml:3: opt_out.keywords: STOP is missing and must stay (carriers require STOP, "
        "START and HELP)",
        id="removing STOP",
    ),
    pytest.param(
        with_lines((6, "  keywords: [UNSTOP]")),
        "k.yaml:6: opt_in.keywords: START is missing and must stay",
        id="removing START",
    ),
    pytest.param(
        with_lines((9, "  keywords: [INFO]")),
        "k.yaml:9: help.keywords: HELP is missing and must stay",
        id="removing HELP",
    ),
    pytest.param(
        with_lines((3, "  keywords: [STOP, QUIT, END, REVOKE, OPT OUT, UNSUBSCRIBE]")),
        "k.yaml:3: opt_out.keywords: CANCEL is missing and must stay (the FCC treats it as "
        "an opt-out whatever the config says)",
        id="removing an FCC per-se word",
    ),
    pytest.param(
        with_lines((4, '  reply: ""')),
        "k.yaml:4: opt_out.reply: the opt-out confirmation cannot be empty",
        id="empty opt-out confirmation",
    ),
    pytest.param(
        with_lines((7, '  reply: "{brand}: hi {name}. Msg & data rates may apply. STOP."')),
        "k.yaml:7: opt_in.reply: unknown placeholder {name}; allowed here: {brand}",
        id="unknown placeholder",
    ),
    pytest.param(
        with_lines((10, '  reply: "{brand: call us. Reply STOP"')),
        "k.yaml:10: help.reply: unmatched '{' in format spec; write a brace that should show "
        "as {{ or }}",
        id="unbalanced brace",
    ),
    pytest.param(
        with_lines(extra='responders:\n  hours: "open 9-5"\n'),
        'k.yaml:12: responders.hours: expected a mapping (name: value lines), got "open 9-5"',
        id="responder that is not a mapping",
    ),
    pytest.param(
        with_lines(extra="responders:\n  hours:\n"),
        "k.yaml:12: responders.hours: expected keywords and reply",
        id="empty responder",
    ),
    pytest.param(
        with_lines(extra="responders:\n  cancel_appt:\n    keywords: [CANCEL]\n    reply: ok\n"),
        'k.yaml:13: responders.cancel_appt.keywords: "CANCEL" is an opt-out keyword; a '
        "responder cannot take over STOP, START, HELP or the other default keywords",
        id="responder takes over a compliance keyword",
    ),
    pytest.param(
        with_lines(extra="responders:\n  x:\n    keywords: [HELP]\n    reply: ok\n"),
        'k.yaml:13: responders.x.keywords: "HELP" is a help keyword; a responder cannot take over',
        id="responder takes over HELP",
    ),
    pytest.param(
        with_lines(extra="responders:\n  now:\n    keywords: [STOP NOW]\n    reply: ok\n"),
        'k.yaml:13: responders.now.keywords: "STOP NOW" starts with the opt-out keyword STOP, '
        "which always wins",
        id="responder starting with STOP",
    ),
    pytest.param(
        with_lines(extra="responders:\n  a:\n    keywords: [HOURS]\n    reply: ok\n"
                         "  b:\n    keywords: [hours!]\n    reply: ok\n"),
        'k.yaml:16: responders.b.keywords: "hours!" appears twice in one scope: here and in '
        "responders.a.keywords (line 13); keep one",
        id="same keyword twice naming both places",
    ),
    pytest.param(
        with_lines((9, "  keywords: [HELP, INFO, INFO]")),
        'k.yaml:9: help.keywords: "INFO" appears twice in one scope: here and in '
        "help.keywords (line 9); keep one",
        id="identical keyword twice in one list",
    ),
    pytest.param(
        with_lines(extra="responders:\n  hours:\n    keywords: [HOURS]\n    reply: '{topic}'\n"),
        "k.yaml:14: responders.hours.reply: unknown placeholder {topic}; allowed here: {brand}",
        id="topic placeholder in a responder without topic",
    ),
    pytest.param(
        with_lines(
            extra="topics:\n  price_drop:\n    name: Price drops\n    phrases: [PRICE DROP]\n"
        ),
        "k.yaml:11: topic_replies: missing; with topics, say what STOP <topic> and START <topic> "
        "answer",
        id="topics without topic replies",
    ),
    pytest.param(
        with_lines(extra=TOPICS + "  Price Drop:\n    name: x\n    phrases: [Y]\n"),
        "k.yaml:19: topics.Price Drop: a topic id is lower-case letters, digits and underscores",
        id="topic id",
    ),
    pytest.param(
        with_lines(extra=TOPICS + "  sale:\n    name: Sales\n    phrases: [price-drop]\n"),
        'k.yaml:21: topics.sale.phrases: "price-drop" already names topic price_drop (line 18)',
        id="phrase names two topics",
    ),
    pytest.param(
        with_lines(extra=TOPICS + "  misc:\n    name: Misc\n    phrases: [HELP]\n"),
        'k.yaml:21: topics.misc.phrases: "HELP" is also a keyword; a topic phrase must differ',
        id="phrase that is a keyword",
    ),
    pytest.param(
        with_lines(extra=TOPICS + "responders:\n  deals:\n    keywords: [DEALS]\n    reply: x\n"
                                  "    action: opt_out\n    topic: price_drops\n"),
        'k.yaml:24: responders.deals.topic: no topic \'price_drops\'; did you mean "price_drop"?',
        id="responder with an unknown topic",
    ),
    pytest.param(
        with_lines(extra=TOPICS + "responders:\n  deals:\n    keywords: [DEALS]\n    reply: x\n"
                                  "    topic: price_drop\n"),
        "k.yaml:23: responders.deals.topic: a topic needs an action (opt_in or opt_out)",
        id="responder topic without action",
    ),
    pytest.param(
        with_lines(
            extra="responders:\n  x:\n    keywords: [X]\n    reply: ok\n    action: delete\n"
        ),
        'k.yaml:15: responders.x.action: expected opt_in or opt_out, got "delete"',
        id="unknown action",
    ),
    pytest.param(
        with_lines(extra="organization:\n  opt_out_scope: everywhere\n"),
        'k.yaml:12: organization.opt_out_scope: expected line or organization, got "everywhere"',
        id="opt-out scope",
    ),
    pytest.param(
        with_lines(extra="organization:\n  provider_confirms_defaults: maybe\n"),
        'k.yaml:12: organization.provider_confirms_defaults: expected true or false, got "maybe"',
        id="boolean",
    ),
    pytest.param(
        with_lines(extra="overrides:\n  - brand: Other\n"),
        "k.yaml:12: overrides[0]: say which lines it is for: lines: [...] or groups: [...]",
        id="override for nothing",
    ),
    pytest.param(
        with_lines(extra="overrides:\n  - lines: [hello]\n"),
        "k.yaml:12: overrides[0].lines: 'hello' is not a valid address",
        id="override line that is not a number",
    ),
    pytest.param(
        with_lines(extra="overrides:\n  - lines: ['+1 415 555 0100']\n"
                         "  - lines: ['(415) 555-0100']\n"),
        "k.yaml:13: overrides[1]: line +14155550100 already has an override (line 12); merge "
        "the two",
        id="line in two overrides",
    ),
    pytest.param(
        with_lines(extra="overrides:\n  - groups: [MG1]\n    help:\n      keywords: [INFO]\n"),
        "k.yaml:14: overrides[0].help.keywords: HELP is missing and must stay",
        id="override removing HELP",
    ),
    pytest.param(
        with_lines(extra="overrides:\n  - groups: [MG1]\n    responders:\n      x:\n"
                         "        keywords: [END]\n        reply: ok\n"),
        'k.yaml:15: overrides[0].responders.x.keywords: "END" is an opt-out keyword',
        id="override responder takes over a keyword",
    ),
    pytest.param(
        with_lines((6, "  keywords: START")),
        "k.yaml:6: opt_in.keywords: expected a list of keywords, such as [STOP, END]",
        id="keywords not a list",
    ),
    pytest.param(
        with_lines((9, "  keywords: [HELP, 411]")),
        "k.yaml:9: help.keywords[1]: expected a keyword with letters or digits, got the number 411",
        id="keyword that is a number",
    ),
    pytest.param(
        "version: 2\n" + MINIMAL,
        "k.yaml:1: version: expected 1",
        id="version",
    ),
    pytest.param(
        "\n".join(line for line in MINIMAL.splitlines() if not line.startswith(("opt_in", "  keywords: [START]", '  reply: "{brand}: Subscribed'))),  # noqa: E501
        "k.yaml:1: opt_in: missing; it is required here",
        id="missing section",
    ),
    pytest.param(
        with_lines((3, "  keywords: [STOP, QUIT, END")),
        "k.yaml:4: not valid YAML: expected ',' or ']', but got ':'",
        id="YAML syntax",
    ),
    pytest.param(
        MINIMAL + "brand: Twice\n",
        'k.yaml:11: not valid YAML: a key appears twice ("brand"); keep one',
        id="duplicate YAML key",
    ),
    pytest.param(
        "- just\n- a list\n",
        "k.yaml:1: expected a mapping with brand, opt_out, opt_in, help, ... at the top",
        id="not a mapping",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), CASES)
def test_each_rule_names_its_line_and_says_what_is_wrong(text: str, message: str) -> None:
    found = problems(text)
    assert any(problem.startswith(message) for problem in found), found


def test_every_problem_is_reported_at_once_in_line_order() -> None:
    text = with_lines(
        (3, "  keywords: [QUIT, END, REVOKE, OPT OUT, CANCEL, UNSUBSCRIBE]"),
        (7, '  reply: "{nope}"'),
        extra="colour: red\n",
    )
    found = problems(text)
    assert [problem.split(":")[1] for problem in found] == ["3", "7", "11"]


def test_spelling_variants_of_one_keyword_may_be_listed_together() -> None:
    variants = "STOP, STOPALL, STOP ALL, QUIT, END, REVOKE, OPT OUT, OPT-OUT, OPTOUT, CANCEL"
    config = parse(with_lines((3, f"  keywords: [{variants}, UNSUBSCRIBE]")))
    assert len(config.defaults.opt_out.keywords) == 11


def test_a_missing_file_names_the_setting_to_fix() -> None:
    with pytest.raises(ConfigError) as raised:
        load(Path("/nonexistent/keywords.yaml"))
    assert str(raised.value) == (
        "/nonexistent/keywords.yaml: no such file (set OPTGATE_KEYWORDS to its path)"
    )


@pytest.mark.parametrize(
    ("replacement", "warning"),
    [
        (
            (10, '  reply: "{brand}: ' + "x" * 160 + ' Reply STOP."'),
            "k.yaml:10: warning: help.reply: 178 characters is 2 SMS segments (160 GSM-7 "
            "characters fit in one); it costs 2 messages per send",
        ),
        (
            (10, '  reply: "{brand}: 😀 ' + "x" * 60 + ' Reply STOP."'),
            "k.yaml:10: warning: help.reply: 80 characters is 2 SMS segments (70 UCS-2 "
            "characters fit in one)",
        ),
        (
            (7, '  reply: "{brand}: You are subscribed. Reply STOP to stop."'),
            'k.yaml:7: warning: opt_in.reply: should say "Msg & data rates may apply" (CTIA)',
        ),
        (
            (10, '  reply: "{brand}: Call 1-800-555-0100."'),
            "k.yaml:10: warning: help.reply: should say how to opt out",
        ),
    ],
    ids=["longer than one GSM-7 segment", "longer than one UCS-2 segment",
         "opt-in without rates", "help without STOP"],
)  # fmt: skip
def test_warnings_do_not_stop_loading(replacement: tuple[int, str], warning: str) -> None:
    config = parse(with_lines(replacement), "k.yaml")
    assert any(str(found).startswith(warning) for found in config.warnings), config.warnings


def test_the_shipped_file_loads_without_warnings() -> None:
    config = load(SHIPPED_KEYWORDS)
    assert config.warnings == ()
    assert set(config.topics) == {"price_drop", "new_arrival"}
    assert set(config.defaults.responders) == {"hours", "join"}


def test_the_shipped_defaults_cover_the_compliance_union() -> None:
    # docs/compliance.md, The keywords optgate recognises by default.
    from app.keywords.text import key

    config = load(SHIPPED_KEYWORDS)
    keys = {keyword.key for keyword in config.defaults.opt_out.keywords}
    union = ["STOP", "STOPALL", "STOP ALL", "UNSUBSCRIBE", "UNSUB", "CANCEL", "END", "QUIT",
             "REVOKE", "OPTOUT", "OPT OUT", "OPT-OUT", "REMOVE", "ARRET", "TD"]  # fmt: skip
    assert {key(word) for word in union} <= keys
    assert {key(w) for w in ("START", "UNSTOP", "YES")} <= {
        keyword.key for keyword in config.defaults.opt_in.keywords
    }
    assert {key(w) for w in ("HELP", "INFO", "AIDE")} <= {
        keyword.key for keyword in config.defaults.help.keywords
    }
    written = SHIPPED_KEYWORDS.read_text()
    for spelling in ("STOP ALL", "STOPALL", "OPT OUT", "OPT-OUT", "OPTOUT", "REVOKE", "UNSUB"):
        assert spelling in written


def test_an_override_changes_only_its_lines() -> None:
    config = parse(with_lines(extra="overrides:\n  - lines: ['12345']\n    brand: Shorty\n"))
    assert config.rules_for(line="12345").brand == "Shorty"
    assert config.rules_for(line="+14155550100").brand == "Acme"
    assert config.rules_for(line="12345").opt_out == config.defaults.opt_out


def test_a_reply_with_an_invisible_control_character_is_refused() -> None:
    found = problems(with_lines((10, '  reply: "{brand}: Call us.\\a Reply STOP."')))
    assert found == [
        "k.yaml:10: help.reply: contains the control character U+0007, which a text message "
        "cannot carry; remove it"
    ]


LIMIT_PROBLEMS = [
    pytest.param(
        with_lines(extra="limits:\n  marketing: 4 a month\n"),
        "k.yaml:12: limits.marketing: expected a limit such as '4 per 30 days'",
        id="a limit not written N per D days",
    ),
    pytest.param(
        with_lines(extra="limits:\n  marketing: 4\n"),
        "k.yaml:12: limits.marketing: expected a limit such as '4 per 30 days'",
        id="a bare number",
    ),
    pytest.param(
        with_lines(extra=TOPICS + "limits:\n  topics:\n    price_drops: 1 per 7 days\n"),
        "k.yaml:21: limits.topics.price_drops: no such topic (topics: price_drop)",
        id="a limit for a topic that does not exist",
    ),
    pytest.param(
        with_lines(extra="limits:\n  marketting: 4 per 30 days\n"),
        'k.yaml:12: limits.marketting: unknown key; did you mean "marketing"?',
        id="a misspelt key",
    ),
]


@pytest.mark.parametrize(("text", "message"), LIMIT_PROBLEMS)
def test_a_wrong_limit_names_its_line(text: str, message: str) -> None:
    found = problems(text)
    assert any(problem.startswith(message) for problem in found), found


def test_limits_are_read_in_all_and_per_topic() -> None:
    config = parse(
        with_lines(
            extra=TOPICS + "limits:\n  marketing: 4 per 30 days\n  topics:\n    price_drop: 2/7d\n"
        ),
        "k.yaml",
    )

    assert config.limits == Limits(overall=(Limit(4, 30),), topics={"price_drop": Limit(2, 7)})
    assert parse(MINIMAL, "k.yaml").limits == Limits()
