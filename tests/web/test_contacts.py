"""One contact through the admin API, on SQLite and PostgreSQL: its consent on every line,
manual changes under the consent rules, the flags, the history a page at a time.

Every change must land in the history with who made it (the person and the token);
every refusal (a role that may not, a rule that forbids, input that does not fit)
must answer JSON and write nothing.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from werkzeug.test import TestResponse

from app.addresses import normalize_line
from app.consent.values import Flag, Source
from app.data.models import ConsentEvent, ContactAddress, Message, MessageStatus
from app.lines import add_line, get_or_create_organization
from app.sending import handoff
from tests.conftest import cases
from tests.web.admin import (
    API,
    CONTACT,
    GROUP,
    LINE_A,
    LINE_B,
    LINE_C,
    LINES,
    MANAGER_SECRET,
    Admin,
    bearer,
    ok,
    refusal,
)

CONSENT = f"/contacts/{CONTACT}/consent"
HISTORY = f"/contacts/{CONTACT}/history"
TOPICS = {"price_drop", "new_arrival"}
UNSET = {"set": False, "source": None, "actor": None, "at": None, "reason": None}
AGENT_ALICE = "alice (token agent1)"
MANAGER_CAROL = "carol (token boss)"


def opt_out(admin: Admin, **fields: Any) -> TestResponse:
    """An agent's opt-out (by default of line A, by alice)."""
    payload = {"status": "opted_out", "scope": "line", "line": LINE_A, "actor": "alice"}
    return admin.post(CONSENT, payload | fields)


def opt_in(admin: Admin, **fields: Any) -> TestResponse:
    """A manager's opt-in (by default on line A, by carol)."""
    payload = {"status": "opted_in", "scope": "line", "line": LINE_A, "actor": "carol"}
    return admin.post(CONSENT, payload | fields, MANAGER_SECRET)


def statuses(admin: Admin, address: str = CONTACT) -> dict[tuple[str, str], str]:
    """(line, channel) -> overall status, as GET consent shows it."""
    shown = ok(admin.get(f"/contacts/{address}/consent"))
    return {(entry["line"], entry["channel"]): entry["status"] for entry in shown["lines"]}


def opted_out_where(admin: Admin) -> set[tuple[str, str]]:
    return {point for point, status in statuses(admin).items() if status == "opted_out"}


def history(admin: Admin) -> list[dict[str, Any]]:
    body = ok(admin.get(f"{HISTORY}?limit=1000"))
    events: list[dict[str, Any]] = body["events"]
    return events


def is_recent(stamp: str) -> bool:
    moment = datetime.fromisoformat(stamp)
    return moment.tzinfo is not None and abs(datetime.now(UTC) - moment) < timedelta(minutes=1)


# -- reading the consent ----------------------------------------------------------------


def test_a_number_never_seen_is_not_defined_on_every_line_channel_and_topic(
    admin: Admin,
) -> None:
    shown = ok(admin.get(CONSENT))

    assert (shown["address"], shown["organization"]) == (CONTACT, "default")
    assert [(e["line"], e["line_name"], e["group"], e["channel"]) for e in shown["lines"]] == [
        (LINE_A, "Main", None, "sms"),
        (LINE_A, "Main", None, "voice"),
        (LINE_B, None, GROUP, "sms"),
        (LINE_B, None, GROUP, "voice"),
        (LINE_C, None, None, "sms"),
        (LINE_C, None, None, "voice"),
    ]
    for entry in shown["lines"]:
        assert (entry["status"], entry["because"], entry["source"], entry["scope"]) == (
            "not_defined", "nothing", None, None
        )  # fmt: skip
        assert set(entry["topics"]) == TOPICS
        assert {topic["status"] for topic in entry["topics"].values()} == {"not_defined"}
    assert shown["flags"] == {flag.value: UNSET for flag in Flag}
    assert shown["records"] == []
    # Reading writes nothing, not even the address.
    assert (admin.count(ContactAddress), admin.count(ConsentEvent)) == (0, 0)


def test_the_address_in_the_url_may_be_any_written_form_of_the_number(admin: Admin) -> None:
    opt_out(admin)

    shown = ok(admin.get("/contacts/415-555-0199/consent"))

    assert shown["address"] == CONTACT
    assert shown["lines"][0]["status"] == "opted_out"


def test_the_consent_shows_what_decides_each_line_and_the_records_behind_it(
    admin: Admin,
) -> None:
    ok(opt_out(admin, scope="group", line=None, group=GROUP, reason="asked on the phone"))
    admin.contact_stop(LINE_A)

    shown = ok(admin.get(CONSENT))

    entries = {(e["line"], e["channel"]): e for e in shown["lines"]}
    on_a, on_b = entries[(LINE_A, "sms")], entries[(LINE_B, "sms")]
    assert (on_a["status"], on_a["source"], on_a["actor"], on_a["scope"]) == (
        "opted_out", "keyword", CONTACT, "line"
    )  # fmt: skip
    assert (on_b["status"], on_b["source"], on_b["actor"], on_b["scope"], on_b["reason"]) == (
        "opted_out", "manual", AGENT_ALICE, "group", "asked on the phone"
    )  # fmt: skip
    assert is_recent(on_a["at"]) and is_recent(on_b["at"])
    assert on_b["topics"]["price_drop"]["status"] == "opted_out"
    others = {point: e["status"] for point, e in entries.items()}
    assert others == {
        (LINE_A, "sms"): "opted_out",
        (LINE_A, "voice"): "not_defined",
        (LINE_B, "sms"): "opted_out",
        (LINE_B, "voice"): "not_defined",
        (LINE_C, "sms"): "not_defined",
        (LINE_C, "voice"): "not_defined",
    }
    records = [
        {k: r[k] for k in ("scope", "line", "group", "source", "actor")} for r in shown["records"]
    ]
    assert records == [
        {"scope": "group", "line": None, "group": GROUP, "source": "manual", "actor": AGENT_ALICE},
        {"scope": "line", "line": LINE_A, "group": None, "source": "keyword", "actor": CONTACT},
    ]
    assert {(r["status"], r["channel"], r["topic"]) for r in shown["records"]} == {
        ("opted_out", "sms", None)
    }


def test_an_email_address_has_one_email_entry_for_the_organization(admin: Admin) -> None:
    address = "ann@example.com"
    changed = ok(
        admin.post(
            f"/contacts/{address}/consent",
            {"status": "opted_out", "scope": "organization", "actor": "alice"},
        )
    )

    [event] = changed["events"]
    assert (event["channel"], event["scope"], event["address"]) == (
        "email",
        "organization",
        address,
    )
    shown = ok(admin.get(f"/contacts/{address}/consent"))
    assert [(e["line"], e["channel"], e["status"]) for e in shown["lines"]] == [
        (None, "email", "opted_out")
    ]


# -- manual changes ---------------------------------------------------------------------

SCOPES = {
    "line": ({"scope": "line", "line": "(415) 555-0101"}, "line", LINE_B, None, {LINE_B}),
    "group": ({"scope": "group", "group": GROUP}, "group", None, GROUP, {LINE_B}),
    "organization": ({"scope": "organization"}, "organization", None, None, set(LINES)),
}


@pytest.mark.parametrize("scope", SCOPES, ids=list(SCOPES))
def test_an_agent_opt_out_is_written_with_its_actor_and_stops_its_scope_once(
    admin: Admin, scope: str
) -> None:
    fields, kind, line, group, stopped = SCOPES[scope]
    payload = {"status": "opted_out", "actor": "  alice ", "reason": "asked by phone", **fields}

    answer = ok(admin.post(CONSENT, payload))

    assert answer["address"] == CONTACT
    assert answer["changed"] is True
    assert answer["consent"] == f"{API}{CONSENT}"
    [event] = answer["events"]
    assert is_recent(event.pop("at"))
    assert len(event.pop("hash")) == 64
    assert event == {
        "id": event["id"],
        "seq": 1,
        "address": CONTACT,
        "subject": "consent",
        "scope": kind,
        "line": line,
        "group": group,
        "channel": "sms",
        "topic": None,
        "old": "not_defined",
        "new": "opted_out",
        "old_source": None,
        "source": "manual",
        "actor": AGENT_ALICE,
        "reason": "asked by phone",
        "message_id": None,
    }
    [row] = admin.events()
    assert (row.id, row.source, row.actor, row.reason) == (
        event["id"], Source.MANUAL, AGENT_ALICE, "asked by phone"
    )  # fmt: skip
    assert opted_out_where(admin) == {(number, "sms") for number in stopped}
    assert [e["id"] for e in history(admin)] == [event["id"]]

    again = ok(admin.post(CONSENT, payload | {"actor": "dave"}))

    assert (again["changed"], again["events"]) == (False, [])
    assert [row.actor for row in admin.events()] == [AGENT_ALICE]


def test_a_topic_opt_out_stops_only_that_topic(admin: Admin) -> None:
    answer = ok(opt_out(admin, topic="price_drop", channel="all"))

    assert {(e["channel"], e["topic"], e["new"]) for e in answer["events"]} == {
        ("all", "price_drop", "opted_out")
    }
    entry = ok(admin.get(CONSENT))["lines"][0]
    assert (entry["line"], entry["status"]) == (LINE_A, "not_defined")
    assert entry["topics"]["price_drop"]["status"] == "opted_out"
    assert entry["topics"]["new_arrival"]["status"] == "not_defined"


def test_an_agent_may_not_opt_in_and_nothing_is_written(admin: Admin) -> None:
    ok(opt_out(admin))
    payload = {"status": "opted_in", "scope": "line", "line": LINE_A, "actor": "alice"}

    message = refusal(admin.post(CONSENT, payload), 403, "Forbidden")

    assert "may opt out but not opt in" in message
    assert "manager" in message
    assert len(admin.events()) == 1
    assert statuses(admin)[(LINE_A, "sms")] == "opted_out"


def test_a_manager_may_lift_a_staff_opt_out(admin: Admin) -> None:
    ok(opt_out(admin))

    answer = ok(opt_in(admin, reason="signed the form"))

    assert answer["changed"] is True
    [event] = answer["events"]
    assert (event["old"], event["new"], event["old_source"], event["source"]) == (
        "opted_out", "opted_in", "manual", "manual"
    )  # fmt: skip
    assert (event["actor"], event["seq"], event["line"]) == (MANAGER_CAROL, 2, LINE_A)
    assert [row.actor for row in admin.events()] == [AGENT_ALICE, MANAGER_CAROL]
    assert statuses(admin)[(LINE_A, "sms")] == "opted_in"


KEYWORD = "by texting a stop keyword"
CARRIER = "at the carrier (the provider reported the opt-out)"
CONTACT_STOPS: list[Any] = [
    # (id, source, where the stop applies, the line it came through, the staff opt-in,
    #  where the refusal says the opt-out is, how, the line the hint names)
    ("keyword-texted", "webhook", "line", LINE_A, {"scope": "line", "line": LINE_A},
     f"line {LINE_A}", KEYWORD, LINE_A),
    ("keyword-organization", Source.KEYWORD, "organization", LINE_C, {"scope": "organization"},
     "every line of the organization", KEYWORD, LINE_A),
    ("carrier-line", Source.CARRIER, "line", LINE_C, {"scope": "line", "line": LINE_C},
     f"line {LINE_C}", CARRIER, LINE_C),
    ("carrier-group", Source.CARRIER, "group", LINE_B, {"scope": "group", "group": GROUP},
     f"the line group {GROUP}", CARRIER, LINE_B),
]  # fmt: skip


@cases(("source", "scope", "line", "fields", "where", "how", "hint_line"), CONTACT_STOPS)
def test_staff_cannot_lift_the_contacts_own_opt_out_and_are_told_how_it_can_be_lifted(
    admin: Admin,
    source: Source | str,
    scope: str,
    line: str,
    fields: dict[str, Any],
    where: str,
    how: str,
    hint_line: str,
) -> None:
    if source == "webhook":
        admin.text("STOP", to=line)  # the contact texts STOP (a line-scoped keyword)
    else:
        assert isinstance(source, Source)
        admin.contact_stop(line, source=source, scope=scope)
    before = statuses(admin)
    [event] = admin.events()

    response = admin.post(
        CONSENT, {"status": "opted_in", "actor": "carol", **fields}, MANAGER_SECRET
    )

    refusal(response, 409, "ConsentRefused")
    body = response.get_json()
    assert body["reason"].startswith(f"{CONTACT} opted out on {where} {how} (")
    assert body["hint"] == (
        "Staff cannot opt them back in: only the contact can opt back in, "
        f"by texting START to {hint_line}."
    )
    assert body["message"] == f"{body['reason']} {body['hint']}"
    assert [row.id for row in admin.events()] == [event.id]
    assert statuses(admin) == before


def test_a_staff_opt_in_for_the_organization_leaves_a_contacts_line_opt_out_in_force(
    admin: Admin,
) -> None:
    admin.text("STOP", to=LINE_A)

    answer = ok(opt_in(admin, scope="organization"))

    [event] = answer["events"]
    assert (event["scope"], event["new"]) == ("organization", "opted_in")
    shown = statuses(admin)
    assert shown[(LINE_A, "sms")] == "opted_out"
    assert shown[(LINE_B, "sms")] == shown[(LINE_C, "sms")] == "opted_in"


@pytest.mark.parametrize("scope", ["line", "organization"])
def test_after_do_not_contact_no_staff_opt_in_is_possible(admin: Admin, scope: str) -> None:
    ok(admin.post(f"/contacts/{CONTACT}/do-not-contact", {"actor": "alice"}))
    fields: dict[str, Any] = {"scope": scope} | ({} if scope == "line" else {"line": None})

    response = opt_in(admin, **fields)

    refusal(response, 409, "ConsentRefused")
    body = response.get_json()
    assert "do-not-contact" in body["reason"]
    assert "no one can opt this address back in" in body["hint"]
    assert [row.subject for row in admin.events()] == ["do_not_contact"]


# -- bad input writes nothing -------------------------------------------------------------

GOOD: dict[str, Any] = {"status": "opted_out", "scope": "line", "line": LINE_A, "actor": "alice"}
BAD_CHANGES: list[Any] = [
    # (id, url, payload, status, error, part of the message)
    ("no-status", CONSENT, GOOD | {"status": None}, 400, "InvalidChange", "status: required"),
    ("not-defined-status", CONSENT, GOOD | {"status": "not_defined"}, 400, "InvalidChange",
     "status: 'not_defined' is not one of opted_in, opted_out"),
    ("no-scope", CONSENT, GOOD | {"scope": None}, 400, "InvalidChange", "scope: required"),
    ("unknown-scope", CONSENT, GOOD | {"scope": "planet"}, 400, "InvalidChange",
     "scope: 'planet' is not one of line, group, organization"),
    ("no-actor", CONSENT, GOOD | {"actor": None}, 400, "InvalidChange", "actor: required"),
    ("blank-actor", CONSENT, GOOD | {"actor": "   "}, 400, "InvalidChange", "actor: required"),
    ("actor-too-long", CONSENT, GOOD | {"actor": "x" * 121}, 400, "InvalidRequest",
     "actor: at most 120 characters"),
    ("line-scope-without-line", CONSENT, GOOD | {"line": None}, 400, "InvalidChange",
     "line: required"),
    ("unknown-line", CONSENT, GOOD | {"line": "+14155550999"}, 404, "NotFound",
     "there is no line +14155550999"),
    ("line-not-a-number", CONSENT, GOOD | {"line": "front desk"}, 400, "InvalidAddress",
     "'front desk' is not a valid address"),
    ("group-scope-without-group", CONSENT, GOOD | {"scope": "group"}, 400, "InvalidChange",
     "group: required"),
    ("unknown-group", CONSENT, GOOD | {"scope": "group", "group": "east"}, 404, "NotFound",
     "organization 'default' has no line group 'east': `optgate lines list` shows"),
    ("unknown-topic", CONSENT, GOOD | {"topic": "sale"}, 400, "InvalidChange",
     "topic: 'sale' is not a topic of keywords.yaml (known: price_drop, new_arrival)"),
    ("email-channel-for-a-number", CONSENT, GOOD | {"channel": "email"}, 400, "InvalidChange",
     "channel email does not apply to a phone number"),
    ("unknown-channel", CONSENT, GOOD | {"channel": "fax"}, 400, "InvalidChange",
     "channel: 'fax' is not one of sms, voice, email, all"),
    ("reason-not-text", CONSENT, GOOD | {"reason": 42}, 400, "InvalidChange",
     "reason: expected a string"),
    ("invalid-address-in-url", "/contacts/not-a-number/consent", GOOD, 400, "InvalidAddress",
     "'not-a-number' is not a valid address"),
    ("email-on-a-line", "/contacts/ann@example.com/consent", GOOD, 400, "InvalidChange",
     "email consent is kept for the whole organization"),
    ("unknown-organization", f"{CONSENT}?organization=nope", GOOD | {"scope": "organization"},
     404, "NotFound", "there is no organization 'nope' (known: default)"),
    ("manager-opt-in-unknown-line", CONSENT,
     GOOD | {"status": "opted_in", "line": "+14155550999"}, 404, "NotFound", "no line"),
]  # fmt: skip


@cases(("url", "payload", "status", "error", "says"), BAD_CHANGES)
def test_a_change_that_does_not_fit_answers_a_json_4xx_and_writes_nothing(
    admin: Admin, url: str, payload: dict[str, Any], status: int, error: str, says: str
) -> None:
    sent = {name: value for name, value in payload.items() if value is not None}

    message = refusal(admin.post(url, sent, MANAGER_SECRET), status, error)

    assert says in message
    assert (admin.count(ConsentEvent), admin.count(ContactAddress)) == (0, 0)


@pytest.mark.parametrize(
    ("data", "content_type"),
    [("status=opted_out&scope=organization&actor=alice", "application/x-www-form-urlencoded"),
     ('{"status": "opted_out", "scope": "organization", "actor": "alice"', "application/json"),
     ('["opted_out"]', "application/json")],
    ids=["form", "broken-json", "json-array"],
)  # fmt: skip
def test_a_body_that_is_not_a_json_object_answers_400_and_writes_nothing(
    admin: Admin, data: str, content_type: str
) -> None:
    response = admin.client.post(
        API + CONSENT, data=data, content_type=content_type, headers=bearer(MANAGER_SECRET)
    )

    assert "expected a JSON object" in refusal(response, 400, "BadRequest")
    assert admin.count(ConsentEvent) == 0


def test_a_line_of_another_organization_is_refused_when_the_url_names_this_one(
    admin: Admin,
) -> None:
    with admin.database.transaction() as session:
        other = get_or_create_organization(session, "other")
        add_line(session, normalize_line("+14155550900"), other)

    response = admin.post(f"{CONSENT}?organization=default", GOOD | {"line": "+14155550900"})

    message = refusal(response, 400, "InvalidChange")
    assert message == "line +14155550900 is not a line of organization 'default'"
    assert (admin.count(ConsentEvent), admin.count(ContactAddress)) == (0, 0)


def test_an_actor_of_120_characters_is_recorded_whole(admin: Admin) -> None:
    actor = "x" * 120

    ok(opt_out(admin, actor=actor))

    assert [row.actor for row in admin.events()] == [f"{actor} (token agent1)"]


# -- flags --------------------------------------------------------------------------------


def flag_request(admin: Admin, action: str, secret: str | None = None, **body: Any) -> TestResponse:
    payload = {"actor": "alice"} | body
    url = f"/contacts/{CONTACT}/{action}"
    return admin.post(url, payload) if secret is None else admin.post(url, payload, secret)


def flags(admin: Admin) -> dict[str, Any]:
    shown: dict[str, Any] = ok(admin.get(CONSENT))["flags"]
    return shown


def test_an_agent_silences_a_contact_and_only_a_manager_lifts_it(admin: Admin) -> None:
    answer = ok(flag_request(admin, "silence", reason="complained"))

    assert answer["changed"] is True
    [event] = answer["events"]
    assert (event["subject"], event["old"], event["new"], event["scope"], event["channel"]) == (
        "silenced", "clear", "set", "organization", "all"
    )  # fmt: skip
    assert (event["actor"], event["source"], event["reason"]) == (
        AGENT_ALICE, "manual", "complained"
    )  # fmt: skip
    silenced = flags(admin)["silenced"]
    assert (silenced["set"], silenced["actor"], silenced["source"]) == (True, AGENT_ALICE, "manual")

    again = ok(flag_request(admin, "silence"))
    assert (again["changed"], again["events"]) == (False, [])

    message = refusal(flag_request(admin, "unsilence"), 403, "Forbidden")
    assert message == "the token 'agent1' has the role agent; this needs manager"
    assert flags(admin)["silenced"]["set"] is True
    assert len(admin.events()) == 1

    lifted = ok(flag_request(admin, "unsilence", MANAGER_SECRET, actor="carol"))
    [event] = lifted["events"]
    assert (event["subject"], event["old"], event["new"], event["actor"]) == (
        "silenced", "set", "clear", MANAGER_CAROL
    )  # fmt: skip
    assert flags(admin)["silenced"]["set"] is False
    assert [(row.subject, row.new_value) for row in admin.events()] == [
        ("silenced", "set"), ("silenced", "clear")
    ]  # fmt: skip


def test_do_not_contact_is_set_by_an_agent_and_nothing_lifts_it(admin: Admin) -> None:
    answer = ok(flag_request(admin, "do-not-contact", reason="legal request"))

    [event] = answer["events"]
    assert (event["subject"], event["new"], event["actor"]) == (
        "do_not_contact", "set", AGENT_ALICE
    )  # fmt: skip
    # Lifting a silence does not touch it.
    unsilenced = ok(flag_request(admin, "unsilence", MANAGER_SECRET))
    assert (unsilenced["changed"], unsilenced["events"]) == (False, [])
    # Nor does a staff opt-in, nor another route.
    refusal(opt_in(admin, scope="organization", line=None), 409, "ConsentRefused")
    refusal(
        admin.client.delete(
            f"{API}/contacts/{CONTACT}/do-not-contact", headers=bearer(MANAGER_SECRET)
        ),
        405,
        "MethodNotAllowed",
    )
    assert flags(admin)["do_not_contact"]["set"] is True
    assert [row.subject for row in admin.events()] == ["do_not_contact"]
    assert ok(flag_request(admin, "do-not-contact"))["changed"] is False


def test_a_bounce_is_cleared_by_a_manager_only(admin: Admin) -> None:
    admin.set_flag(Flag.BOUNCED, Source.SYSTEM)

    refusal(flag_request(admin, "clear-bounce"), 403, "Forbidden")
    assert flags(admin)["bounced"]["set"] is True

    answer = ok(flag_request(admin, "clear-bounce", MANAGER_SECRET, actor="carol"))
    [event] = answer["events"]
    assert (event["subject"], event["old"], event["new"], event["channel"]) == (
        "bounced", "set", "clear", "sms"
    )  # fmt: skip
    assert (event["old_source"], event["source"], event["actor"]) == (
        "system", "manual", MANAGER_CAROL
    )  # fmt: skip
    assert flags(admin)["bounced"]["set"] is False

    again = ok(flag_request(admin, "clear-bounce", MANAGER_SECRET, actor="carol"))
    assert (again["changed"], again["events"]) == (False, [])
    assert len(admin.events()) == 2


def test_clearing_a_flag_of_an_address_never_seen_changes_nothing(admin: Admin) -> None:
    answer = ok(flag_request(admin, "clear-bounce", MANAGER_SECRET))

    assert (answer["changed"], answer["events"]) == (False, [])
    assert (admin.count(ContactAddress), admin.count(ConsentEvent)) == (0, 0)


FLAG_ACTIONS = ["silence", "unsilence", "do-not-contact", "clear-bounce"]


@pytest.mark.parametrize(
    ("body", "error", "says"),
    [({}, "InvalidChange", "actor: required"),
     ({"actor": "y" * 121}, "InvalidRequest", "actor: at most 120 characters"),
     ({"actor": "alice", "reason": ["x"]}, "InvalidChange", "reason: expected a string")],
    ids=["no-actor", "actor-too-long", "reason-not-text"],
)  # fmt: skip
def test_a_flag_change_without_a_good_actor_answers_400_and_writes_nothing(
    admin: Admin, body: dict[str, Any], error: str, says: str
) -> None:
    admin.set_flag(Flag.BOUNCED)
    admin.set_flag(Flag.SILENCED)

    for action in FLAG_ACTIONS:
        response = admin.post(f"/contacts/{CONTACT}/{action}", body, MANAGER_SECRET)
        assert says in refusal(response, 400, error), action

    assert len(admin.events()) == 2
    assert {name: value["set"] for name, value in flags(admin).items()} == {
        "bounced": True, "silenced": True, "do_not_contact": False
    }  # fmt: skip


# -- history ------------------------------------------------------------------------------


def seven_events(admin: Admin) -> None:
    for number in range(7):
        answer = ok(opt_out(admin) if number % 2 == 0 else opt_in(admin))
        assert answer["changed"] is True
    assert len(admin.events()) == 7


def test_the_history_reads_a_page_at_a_time_in_order_without_gaps_or_repeats(
    admin: Admin,
) -> None:
    seven_events(admin)

    pages = []
    url: str | None = f"{HISTORY}?limit=3"
    while url is not None:
        page = ok(admin.get(url))
        assert page["address"] == CONTACT
        pages.append(page["events"])
        url = page["next"]
        assert len(pages) <= 4, "the next links do not end"

    assert [len(page) for page in pages] == [3, 3, 1]
    seqs = [event["seq"] for page in pages for event in page]
    assert seqs == [1, 2, 3, 4, 5, 6, 7]
    assert [event["id"] for page in pages for event in page] == [row.id for row in admin.events()]
    assert [event["new"] for page in pages for event in page] == ["opted_out", "opted_in"] * 3 + [
        "opted_out"
    ]


def test_a_full_last_page_has_a_next_link_to_an_empty_page(admin: Admin) -> None:
    seven_events(admin)

    first = ok(admin.get(f"{HISTORY}?limit=7&organization=default"))

    assert len(first["events"]) == 7
    assert first["next"] == f"{API}{HISTORY}?after=7&limit=7&organization=default"
    last = ok(admin.get(first["next"]))
    assert (last["events"], last["next"]) == ([], None)


def test_the_history_starts_after_the_sequence_number_given(admin: Admin) -> None:
    seven_events(admin)

    page = ok(admin.get(f"{HISTORY}?after=5"))

    assert [event["seq"] for event in page["events"]] == [6, 7]
    assert page["next"] is None


BAD_PAGES = [
    ("limit=0", "limit: expected a whole number from 1 to 1000, not '0'"),
    ("limit=1001", "limit: expected a whole number from 1 to 1000, not '1001'"),
    ("limit=ten", "limit: expected a whole number from 1 to 1000, not 'ten'"),
    ("limit=", "limit: expected a whole number from 1 to 1000, not ''"),
    ("after=-1", "after: expected a whole number from 0 to 2147483647, not '-1'"),
    ("after=abc", "after: expected a whole number from 0 to 2147483647, not 'abc'"),
    ("after=2147483648", "after: expected a whole number from 0 to 2147483647, not '2147483648'"),
]


def test_every_bad_page_parameter_answers_400(admin: Admin) -> None:
    ok(opt_out(admin))

    for query, says in BAD_PAGES:
        assert refusal(admin.get(f"{HISTORY}?{query}"), 400, "InvalidRequest") == says, query


def test_an_address_never_seen_has_an_empty_history(admin: Admin) -> None:
    seven_events(admin)

    page = ok(admin.get("/contacts/+14155550188/history"))

    assert page == {"address": "+14155550188", "events": [], "next": None}


@pytest.mark.parametrize("path", [HISTORY, CONSENT], ids=["history", "consent"])
def test_an_unknown_organization_answers_404(admin: Admin, path: str) -> None:
    message = refusal(admin.get(f"{path}?organization=unknown"), 404, "NotFound")

    assert message == "there is no organization 'unknown' (known: default)"


# -- the STOP fence -----------------------------------------------------------------------


STOPPING = {
    "opt-out": lambda admin: opt_out(admin),
    "silence": lambda admin: admin.post(f"/contacts/{CONTACT}/silence", {"actor": "alice"}),
    "do-not-contact": lambda admin: admin.post(
        f"/contacts/{CONTACT}/do-not-contact", {"actor": "alice"}
    ),
}


@pytest.mark.parametrize("stopping", list(STOPPING))
def test_a_staff_stop_answers_only_once_no_hand_off_to_the_number_is_in_flight(
    admin: Admin, stopping: str
) -> None:
    message_id = admin.outbound(status=MessageStatus.SENDING)

    def hand_over() -> None:
        time.sleep(0.4)
        with admin.database.transaction() as session:
            session.execute(
                sa.update(Message).where(Message.id == message_id).values(status=MessageStatus.SENT)
            )

    worker = threading.Thread(target=hand_over)
    started = time.monotonic()
    worker.start()
    assert ok(STOPPING[stopping](admin))["changed"] is True
    took = time.monotonic() - started
    worker.join()

    assert 0.4 <= took < handoff.FENCE_WAIT


def test_a_hand_off_that_never_ends_holds_the_answer_for_the_fence_wait_only(
    admin: Admin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handoff, "FENCE_WAIT", 0.5)
    message_id = admin.outbound(status=MessageStatus.SENDING)

    started = time.monotonic()
    answer = ok(opt_out(admin))
    took = time.monotonic() - started

    assert answer["changed"] is True
    assert 0.5 <= took < 3
    assert admin.message(message_id).status is MessageStatus.SENDING


def test_an_opt_out_without_a_hand_off_in_flight_answers_at_once(
    admin: Admin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handoff, "FENCE_WAIT", 2.0)
    admin.outbound(status=MessageStatus.SENT)
    admin.outbound(to="+14155550188", status=MessageStatus.SENDING)  # another number

    started = time.monotonic()
    ok(opt_out(admin))

    assert time.monotonic() - started < 2.0


# -- tokens and roles ---------------------------------------------------------------------

ENDPOINTS = [
    ("GET", CONSENT),
    ("POST", CONSENT),
    ("POST", f"/contacts/{CONTACT}/silence"),
    ("POST", f"/contacts/{CONTACT}/unsilence"),
    ("POST", f"/contacts/{CONTACT}/do-not-contact"),
    ("POST", f"/contacts/{CONTACT}/clear-bounce"),
    ("GET", HISTORY),
]


def test_without_a_token_every_contact_endpoint_answers_401_asking_for_a_bearer_token(
    admin: Admin,
) -> None:
    body = {"status": "opted_out", "scope": "organization", "actor": "alice"}

    for method, path in ENDPOINTS:
        response = admin.client.open(API + path, method=method, json=body)
        assert "Authorization: Bearer <token>" in refusal(response, 401, "Unauthorized"), path
        assert response.headers["WWW-Authenticate"] == "Bearer realm=optgate"

    assert (admin.count(ConsentEvent), admin.count(ContactAddress)) == (0, 0)


@pytest.mark.parametrize("action", ["unsilence", "clear-bounce"])
def test_an_agent_token_may_not_lift_a_flag(admin: Admin, action: str) -> None:
    admin.set_flag(Flag.SILENCED)
    admin.set_flag(Flag.BOUNCED)

    message = refusal(flag_request(admin, action), 403, "Forbidden")

    assert message == "the token 'agent1' has the role agent; this needs manager"
    assert len(admin.events()) == 2
    assert {name: value["set"] for name, value in flags(admin).items()} == {
        "bounced": True, "silenced": True, "do_not_contact": False
    }  # fmt: skip
