"""Issue 14: the kinds of text the matcher must now read, written from the rules.

The independent table is tests/keywords/cases.py; these are the builder's own
cases, one or more per rule (docs/keywords.md), plus what the table cannot
show: which languages a config turns on, replies in the contact's language,
and what keywords.yaml adds to a language file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.keywords import Matcher, load, parse

KEYWORDS_YAML = Path(__file__).resolve().parents[2] / "keywords.yaml"
SHIPPED = KEYWORDS_YAML.read_text(encoding="utf-8")

OUT, T_OUT, NONE, IN = "opt_out", "topic_opt_out", "none", "opt_in"
REVIEW = "review"  # action none, needs_review

#: (text, expected): expected is an action, REVIEW, or (action, topic).
RULES: list[tuple[str, Any]] = [
    # A per-se word opening a longer text (47 CFR 64.1200(a)(10)).
    ("STOP, you people are relentless", OUT),
    ("STOP you people are relentless", OUT),
    ("Stop you guys text way too much", OUT),
    ("STOP I bought a car somewhere else", OUT),
    ("Quit it already", OUT),
    ("Unsubscribe I moved to Ohio", OUT),
    ("Revoke my consent", OUT),
    ("I revoke consent to be texted", OUT),
    ("Cancel texts to this number", OUT),
    ("Stop the madness", REVIEW),
    ("Stop being so pushy", REVIEW),
    ("Cancel my appointment on Friday", NONE),
    ("End of lease paperwork is ready?", NONE),
    ("Stop sign by your lot is down", NONE),
    ("Stop light on Main is out again", NONE),
    # Plain requests in new forms, and topics named in them.
    ("I would prefer not to receive messages", OUT),
    ("I'd rather not get these texts", OUT),
    ("I do not consent to these messages", OUT),
    ("I withdraw my consent", OUT),
    ("I'm done with your texts", OUT),
    ("enough with the texts", OUT),
    ("I want off your list", OUT),
    ("please cease and desist", OUT),
    ("no more new arrival texts", (T_OUT, "new_arrival")),
    ("I don't want price drop texts", (T_OUT, "price_drop")),
    ("no more texts about price drops", (T_OUT, "price_drop")),
    ("no more price drop texts or anything else", OUT),
    ("Did the price drop? no more texts", OUT),
    # Negations never opt out (rule 2).
    ("don't stop sending me deals", REVIEW),
    ("Please don't opt me out", REVIEW),
    ("No dejes de mandarme ofertas", REVIEW),
    ("Não pare de me mandar promoções", REVIEW),
    ("不要停止发送", REVIEW),
    # Spanish
    ("deja de mandarme mensajes", OUT),
    ("Dejen de escribirme por favor", OUT),
    ("no quiero más textos", OUT),
    ("No me manden mensajes", OUT),
    ("Quiero darme de baja", OUT),
    ("Sáquenme de su lista", OUT),
    ("¿Cómo me doy de baja?", REVIEW),
    ("Número equivocado", REVIEW),
    ("Alto", REVIEW),
    ("Para el jueves está bien", NONE),
    ("STOP por favor", OUT),
    ("stop por favor", OUT),  # courtesy of another language, not shouted
    ("stop 谢谢", OUT),
    ("stop 해 주세요", OUT),
    # Portuguese
    ("Pare de me enviar mensagens", OUT),
    ("Não quero mais receber mensagens", OUT),
    ("Me tire da lista", OUT),
    ("SAIR", OUT),
    ("Quem é você?", REVIEW),
    ("Obrigado, até sábado", NONE),
    # French
    ("Arrêtez de m'envoyer des messages", OUT),
    ("Je ne veux plus recevoir de messages", OUT),
    ("Désabonnez-moi", OUT),
    ("Comment me désabonner ?", REVIEW),
    ("Mauvais numéro", REVIEW),
    ("Merci, à samedi", NONE),
    # Chinese, simplified and traditional
    ("退订", OUT),
    ("退訂", OUT),
    ("请不要再给我发短信了", OUT),
    ("請不要再發簡訊", OUT),
    ("停止发送", OUT),
    ("怎么退订？", REVIEW),
    ("你是谁", REVIEW),
    ("我周六来看车", NONE),
    ("我不要发票", NONE),  # "I don't want an invoice" (发票): not 不要发
    # Vietnamese
    ("Đừng nhắn tin cho tôi nữa", OUT),
    ("ngung gui tin nhan", OUT),
    ("Hủy đăng ký", OUT),
    ("Dừng", OUT),
    ("Dung", REVIEW),
    ("Đừng tin anh ta", NONE),  # "don't believe him": tin alone is not "messages"
    ("Cảm ơn, hẹn gặp thứ bảy", NONE),
    # Tagalog
    ("Huwag mo na akong i-text", OUT),
    ("Itigil na po ang pag-text", OUT),
    ("Ayoko na ng text", OUT),
    ("stop na po", OUT),
    ("Sino po ito?", REVIEW),
    ("Salamat po, kita tayo sa Sabado", NONE),
    # Korean
    ("수신거부", OUT),
    ("수신 거부", OUT),
    ("문자 그만 보내주세요", OUT),
    ("스톱", OUT),
    ("누구세요", REVIEW),
    ("리스 계약 해지하고 싶어요", NONE),  # terminate a lease contract, not the texts
    # Look-alike letters
    ("ЅТОР", OUT),
    ("ЅТОР PRICE DROP", (T_OUT, "price_drop")),
    ("ΗΕLΡ", "help"),
    ("стоп", REVIEW),  # genuine Russian: not read, a person decides (ru.yaml)
    ("Сколько стоит эта машина?", NONE),
    ("Ελληνικά, παρακαλώ", NONE),
    # Emoji
    ("🛑", REVIEW),
    ("🛑🛑🛑", REVIEW),
    ("✋🏿", REVIEW),
    ("🙅‍♀️", REVIEW),
    ("⛔️ please", REVIEW),
    ("🛑 texting me", REVIEW),
    ("Thanks ✋", NONE),
    ("👍", NONE),
    ("Stuck at a 🛑 light, 5 min", NONE),
    # Questions about the list and the sender
    ("how do I get off this list?", REVIEW),
    ("I don't know who you are", REVIEW),
    ("Who is this?", REVIEW),
    ("Why do you keep texting me?", REVIEW),
    ("How do I stop these texts?", REVIEW),
    ("Can I unsubscribe?", REVIEW),
    ("Can you stop texting me?", OUT),
    ("Can I opt out of the extended warranty?", NONE),
    ("Who's your finance manager?", NONE),
    # Ordinary talk around the new rules
    ("I'll stop by at 5", NONE),
    ("The bus stop is right by your lot", NONE),
    ("My car won't start", NONE),
    ("Is the price drop on the Civic real?", NONE),
    ("Stop & Shop lot, 10 min", NONE),
    ("No texts after 9pm please", NONE),
]


@pytest.fixture(scope="module")
def matcher() -> Matcher:
    return Matcher(load(KEYWORDS_YAML))


def _said(matcher: Matcher, text: str) -> Any:
    intent = matcher.match(text)
    if intent.needs_review and intent.action.value == NONE:
        return REVIEW
    if intent.action.value.startswith("topic_"):
        return (intent.action.value, intent.topic)
    assert not intent.needs_review, text
    return intent.action.value


@pytest.mark.parametrize(("text", "expected"), RULES, ids=[repr(t)[:40] for t, _ in RULES])
def test_rule(matcher: Matcher, text: str, expected: Any) -> None:
    assert _said(matcher, text) == expected


def with_languages(section: str, text: str = SHIPPED) -> str:
    """The shipped keywords.yaml with its languages section replaced by ``section``."""
    start = text.index("\nlanguages:\n") + 1
    end = text.index("\n# Changes for some lines")
    return text[:start] + section + "\n" + text[end:]


# -- which languages are read, and the replies in them -----------------------------------


def test_the_reply_is_in_the_language_of_the_text(matcher: Matcher) -> None:
    spanish = matcher.match("Deja de mandarme mensajes")
    assert spanish.language == "es"
    assert spanish.reply == "Acme Motors: Ya no recibirá mensajes. Responda START para volver."
    chinese = matcher.match("请不要再发短信")
    assert chinese.reply is not None and "退订" in chinese.reply
    english = matcher.match("STOP")
    assert english.language is None
    assert english.reply is not None and english.reply.startswith("Acme Motors: You are unsub")


def test_a_language_without_a_reply_answers_in_english() -> None:
    matcher = Matcher(parse(with_languages("languages:\n  es:\n")))
    intent = matcher.match("Deja de mandarme mensajes")
    assert intent.action.value == OUT and intent.language == "es"
    assert intent.reply is not None and "You are unsubscribed" in intent.reply


def test_only_the_languages_listed_are_read() -> None:
    matcher = Matcher(parse(with_languages("languages:\n  es:\n")))
    assert matcher.match("Deja de mandarme mensajes").action.value == OUT
    assert matcher.match("Pare de me enviar mensagens").action.value == NONE
    assert matcher.match("退订").action.value == NONE
    english_only = Matcher(parse(with_languages("languages: {}\n")))
    assert english_only.match("Deja de mandarme mensajes").action.value == NONE
    # English phrases are always read.
    assert english_only.match("I would prefer not to receive messages").action.value == OUT


def test_without_the_section_every_shipped_language_is_read() -> None:
    start = SHIPPED.index("\nlanguages:\n") + 1
    end = SHIPPED.index("\n# Changes for some lines")
    matcher = Matcher(parse(SHIPPED[:start] + SHIPPED[end:]))
    for text in ("Deja de mandarme mensajes", "退订", "수신거부", "Hủy đăng ký"):
        intent = matcher.match(text)
        assert intent.action.value == OUT, text
        assert intent.reply is not None and "You are unsubscribed" in intent.reply


def test_keywords_yaml_adds_phrases_and_slot_words_to_a_language() -> None:
    section = (
        "languages:\n"
        "  es:\n"
        '    opt_out: ["no me manden más whatsapps"]\n'
        "    slots:\n"
        "      messages: [guasaps]\n"
    )
    matcher = Matcher(parse(with_languages(section)))
    assert matcher.match("No me manden más whatsapps").action.value == OUT
    # The slot word reaches the shipped phrases that name {messages}.
    assert matcher.match("no quiero más guasaps").action.value == OUT
    assert Matcher(parse(SHIPPED)).match("no quiero más guasaps").action.value == NONE


def test_keywords_yaml_may_add_a_language_of_its_own() -> None:
    section = "languages:\n  it:\n    name: Italian\n    opt_out_alone: [basta messaggi]\n"
    matcher = Matcher(parse(with_languages(section)))
    assert matcher.match("Basta messaggi").action.value == OUT


# -- validation, with PATH:LINE ----------------------------------------------------------


def problems(text: str) -> list[str]:
    from app.keywords import ConfigError

    with pytest.raises(ConfigError) as raised:
        parse(text)
    return [str(problem) for problem in raised.value.problems]


def line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


@pytest.mark.parametrize(
    ("section", "needle", "message"),
    [
        (
            "languages:\n  sp:\n",
            "  sp:",
            "languages.sp: optgate has no file for the language 'sp' (it has: en, es, fr, ko, "
            "pt, ru, tl, vi, zh); to add one here, give its name and phrases",
        ),
        (
            "languages:\n  Spanish:\n",
            "Spanish:",
            "languages.Spanish: a language is its ISO 639 code in lower case",
        ),
        (
            "languages:\n  es:\n    opt_out_reples: x\n",
            "opt_out_reples",
            'languages.es.opt_out_reples: unknown key; did you mean "opt_out_reply"?',
        ),
        (
            'languages:\n  es:\n    opt_out_reply: "{brand}: Baja {nombre}"\n',
            "Baja {nombre}",
            "languages.es.opt_out_reply: unknown placeholder {nombre}; allowed here: {brand}",
        ),
        (
            'languages:\n  en:\n    opt_out_reply: "{brand}: bye"\n',
            "{brand}: bye",
            "languages.en.opt_out_reply: the English confirmation is opt_out.reply",
        ),
        (
            'languages:\n  es:\n    opt_out: ["deja de {send_mee}"]\n',
            "deja de {send_mee}",
            'opt_out: "deja de {send_mee}": no slot {send_mee}; did you mean "{send_me}"?',
        ),
        (
            'languages:\n  es:\n    review: ["no [quiero"]\n',
            "no [quiero",
            'review: "no [quiero": a "[" without its "]"',
        ),
        (
            "languages:\n  es:\n    opt_out: [alto]\n",
            "opt_out: [alto]",
            'opt_out: "alto": a text it stands for is also in review_alone',
        ),
        (
            "languages:\n  es:\n    opt_out: [numero equivocado]\n",
            "opt_out: [numero",
            'opt_out: "numero equivocado": a text it stands for is also in review',
        ),
        (
            "languages:\n  es:\n    opt_out: 3\n",
            "opt_out: 3",
            "languages.es.opt_out: expected a list of phrases, such as [alto, basta]",
        ),
    ],
)
def test_language_errors_name_their_line(section: str, needle: str, message: str) -> None:
    text = with_languages(section)
    found = problems(text)
    line = line_of(text, needle)
    assert any(p.startswith(f"keywords.yaml:{line}: ") and message in p for p in found), found


def test_language_file_errors_name_their_file_and_line() -> None:
    from app.keywords import ConfigError
    from app.keywords.languages import parse_file

    text = (
        "name: Test\n"
        "slots:\n"
        "  many: [a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12]\n"
        "opt_out:\n"
        '  - "{many} {many} {many} {many}"\n'
        '  - "x {stray"\n'
        '  - "!!!"\n'
        "courtesy: [please]\n"
        "opt_out_alone: [please]\n"
        "revieww: [x]\n"
    )
    with pytest.raises(ConfigError) as raised:
        parse_file("xx", text, "xx.yaml")
    found = [str(problem) for problem in raised.value.problems]
    assert found == [
        'xx.yaml:5: opt_out: "{many} {many} {many} {many}": stands for 20,736 texts '
        "(at most 10,000): split it into phrases with fewer slots or [options]",
        'xx.yaml:6: opt_out: "x {stray": a stray "{"; a slot is written {name}',
        'xx.yaml:7: opt_out: "!!!": has no letters or digits',
        'xx.yaml:9: opt_out_alone: "please": a text it stands for is also in courtesy '
        "(xx.yaml:8) as courtesy; keep one",
        'xx.yaml:10: revieww: unknown key; did you mean "review"? allowed here: name, slots, '
        "courtesy, negations, questions, opt_out, opt_out_first, opt_out_alone, "
        "opt_out_alone_as_written, review, review_alone",
    ]


def test_a_language_file_needs_its_name() -> None:
    from app.keywords import ConfigError
    from app.keywords.languages import parse_file

    with pytest.raises(ConfigError, match=r"xx.yaml:1: name: missing"):
        parse_file("xx", "opt_out: [basta]\n", "xx.yaml")


def test_every_shipped_file_is_valid_and_shipped_as_package_data() -> None:
    import fnmatch
    import tomllib

    from app.keywords.languages import parse_file, shipped, shipped_path

    for code in shipped():
        path = Path(shipped_path(code))
        assert parse_file(code, path.read_text(encoding="utf-8"), str(path)).code == code
    package = Path(__file__).resolve().parents[2] / "app"
    patterns = tomllib.loads((package.parent / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["app"]
    data = [*(package / "keywords" / "languages").glob("*.yaml"), package / "keywords/emoji.yaml"]
    for file in data:
        relative = file.relative_to(package).as_posix()
        assert any(fnmatch.fnmatch(relative, pattern) for pattern in patterns), relative
