"""`optgate keywords check` and `optgate keywords test`."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import main
from tests.conftest import SHIPPED_KEYWORDS

KEYS = ["text", "action", "topic", "responder", "reply", "needs_review"]


@pytest.fixture(autouse=True)
def shipped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPTGATE_KEYWORDS", str(SHIPPED_KEYWORDS))


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_check_prints_a_summary_of_a_good_file(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "keywords", "check")
    assert code == 0
    assert out.splitlines()[0] == f"{SHIPPED_KEYWORDS}: OK"
    assert "brand:       Acme Motors" in out
    assert "price_drop (PRICE DROP, PRICE REDUCTION)" in out
    assert "join (JOIN -> opt_in)" in out
    assert len(out.splitlines()) < 24  # one screen
    assert err == ""


def test_check_lists_every_error_as_path_line_message(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "keywords.yaml"
    bad.write_text(
        SHIPPED_KEYWORDS.read_text()
        .replace("  keywords: [START, UNSTOP, YES]", "  keywords: [UNSTOP, YES]")
        .replace("    keywords: [HOURS]", "    keywords: [HOURS, HELP]")
    )
    code, out, err = run(capsys, "keywords", "check", str(bad))
    assert code == 1
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 2
    assert all(line.startswith(f"{bad}:") and line.split(":")[1].isdigit() for line in lines)
    assert "opt_in.keywords: START is missing" in lines[0]
    assert 'responders.hours.keywords: "HELP" is a help keyword' in lines[1]


def test_check_shows_warnings_and_passes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    long = tmp_path / "keywords.yaml"
    long.write_text(
        SHIPPED_KEYWORDS.read_text().replace("Sun 11am-5pm", "Sun 11am-5pm " + "x" * 90)
    )
    code, out, err = run(capsys, "keywords", "check", str(long))
    assert code == 0
    assert out.startswith(f"{long}: OK (1 warnings)")
    assert err.startswith(f"{long}:") and ": warning: responders.hours.reply: " in err


def test_check_of_a_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _out, err = run(capsys, "keywords", "check", str(tmp_path / "nope.yaml"))
    assert code == 1
    assert err == f"{tmp_path / 'nope.yaml'}: no such file (set OPTGATE_KEYWORDS to its path)\n"


def test_test_explains_each_text(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = run(capsys, "keywords", "test", "stop price drop", "wrong number")
    assert code == 0
    assert out.splitlines()[0] == "'stop price drop': topic_opt_out; topic price_drop"
    assert "NEEDS REVIEW by a person" in out


def test_test_json_prints_one_object_per_text(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = run(capsys, "keywords", "test", "--json", "HOURS?", "STOP")
    assert code == 0
    first, second = (json.loads(line) for line in out.splitlines())
    assert list(first) == KEYS
    assert (first["action"], first["responder"], first["topic"]) == ("responder", "hours", None)
    assert second["action"] == "opt_out" and second["reply"].startswith("Acme Motors:")


def test_test_applies_the_overrides_of_the_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "keywords.yaml"
    config.write_text(
        SHIPPED_KEYWORDS.read_text().replace(
            '  - lines: ["12345"]', '  - lines: ["12345"]\n    brand: Acme Short'
        )
    )
    args = ("keywords", "test", "--config", str(config), "--json", "HELP")
    _code, out, _err = run(capsys, *args, "--line", "12345")
    assert json.loads(out)["reply"].startswith("Acme Short:")
    _code, out, _err = run(capsys, *args, "--line", "(415) 555-0100")
    assert json.loads(out)["reply"].startswith("Acme Motors:")


def test_jsonl_texts_without_a_line_are_read_for_the_line_option(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "keywords.yaml"
    config.write_text(
        SHIPPED_KEYWORDS.read_text().replace(
            '  - lines: ["12345"]', '  - lines: ["12345"]\n    brand: Acme Short'
        )
    )
    lines = [{"text": "HELP"}, {"text": "HELP", "line": "+14155550100"}]
    monkeypatch.setattr(sys, "stdin", io.StringIO("".join(json.dumps(x) + "\n" for x in lines)))
    args = ("keywords", "test", "--config", str(config), "--jsonl", "--line", "12345")
    code, out, _err = run(capsys, *args)
    replies = [json.loads(line)["reply"] for line in out.splitlines()]
    assert code == 0
    assert [reply.split(":")[0] for reply in replies] == ["Acme Short", "Acme Motors"]


def test_jsonl_answers_each_line_in_order(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = [
        {"text": "STOP"},
        {"text": "START NEW ARRIVALS", "line": "12345"},
        {"text": "I'll stop by at 5", "line": "+14155550100"},
        {"text": "leave me alone"},
    ]
    monkeypatch.setattr(sys, "stdin", io.StringIO("".join(json.dumps(x) + "\n" for x in lines)))
    code, out, err = run(capsys, "keywords", "test", "--jsonl")
    assert (code, err) == (0, "")
    answers = [json.loads(line) for line in out.splitlines()]
    assert [list(answer) for answer in answers] == [KEYS] * 4
    assert [a["text"] for a in answers] == [x["text"] for x in lines]
    assert [(a["action"], a["topic"], a["needs_review"]) for a in answers] == [
        ("opt_out", None, False),
        ("topic_opt_in", "new_arrival", False),
        ("none", None, False),
        ("none", None, True),
    ]


def test_jsonl_keeps_its_place_on_a_bad_line_and_exits_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    stdin = '{"text": "STOP"}\nnot json\n{"line": "+14155550100"}\n{"text": "x", "line": "x"}\n'
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin + '{"text": "HELP"}\n'))
    code, out, err = run(capsys, "keywords", "test", "--jsonl")
    assert code == 1
    answers = [json.loads(line) for line in out.splitlines()]
    assert [a.get("action") for a in answers] == ["opt_out", None, None, None, "help"]
    assert err.splitlines()[0].startswith("<stdin>:2: not valid JSON: ")
    assert err.splitlines()[1] == '<stdin>:3: expected an object with a "text" string'
    assert err.splitlines()[2].startswith("<stdin>:4: 'x' is not a valid address")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("keywords", "test"), "give one or more texts"),
        (("keywords", "test", "--jsonl", "STOP"), "not both"),
        (("keywords", "test", "--line", "hello", "STOP"), "'hello' is not a valid address"),
    ],
)
def test_mistakes_are_one_line(
    capsys: pytest.CaptureFixture[str], args: tuple[str, ...], says: str
) -> None:
    code, _out, err = run(capsys, *args)
    assert code == 1
    assert len(err.splitlines()) == 1 and says in err


def test_the_installed_command_streams_jsonl() -> None:
    command = Path(sys.executable).parent / "optgate"
    stdin = "".join(json.dumps({"text": text}) + "\n" for text in ["stop", "hours", "yes stop"])
    done = subprocess.run(
        [command, "keywords", "test", "--jsonl"],
        input=stdin, capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "OPTGATE_KEYWORDS": str(SHIPPED_KEYWORDS)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["action"] for line in done.stdout.splitlines()] == [
        "opt_out",
        "responder",
        "opt_out",
    ]
