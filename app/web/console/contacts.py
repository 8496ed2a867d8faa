"""Find a contact; their consent on every line, preferences, flags, history, messages.

Changes go through the ledger exactly as the API's do (source ``manual``, the
signed-in person as actor), under the same roles: an agent may opt out,
silence and set do-not-contact; opting in, lifting a silence and clearing a
bounce need a manager. A change that stops sending answers only once no
hand-off to the address is in flight, as a texted STOP does.

Every form carries the address's history position when the page was drawn
(``seen``): if anything changed the address since, the form is refused and
the page shows what is true now, so nobody acts on a stale page.
"""

from __future__ import annotations

import functools
from typing import Any

import phonenumbers
from flask import Response, flash, redirect, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import Forbidden

from app.addresses import Address, AddressKind
from app.consent import history, ledger, queries
from app.consent.reports import csv_chunks
from app.consent.values import (
    EMAIL_CHANNELS,
    PHONE_CHANNELS,
    Channel,
    Flag,
    Scope,
    Source,
    Status,
)
from app.data.models import Line, LineGroup, Organization
from app.errors import ConsentRefused, InvalidAddress, InvalidChange, OptgateError
from app.messages.lookup import messages_of
from app.sending import handoff
from app.sending.policy import MEANINGS
from app.web import database, keywords
from app.web import session as db_session
from app.web.api import contact as contact_address
from app.web.console import (
    actor,
    blueprint,
    is_manager,
    organization,
    page,
    reason_field,
    refusal,
    wants_fragment,
)

#: History events and messages per page.
PAGE_SIZE = 50

STATUS_WORDS = {
    Status.OPTED_IN: "Opted in",
    Status.OPTED_OUT: "Opted out",
    Status.NOT_DEFINED: "Not defined",
}
CHANNEL_WORDS = {
    Channel.SMS: "SMS",
    Channel.VOICE: "Phone calls",
    Channel.EMAIL: "Email",
    Channel.ALL: "All communications",
}
FLAG_WORDS = {
    Flag.BOUNCED: "SMS bounce",
    Flag.SILENCED: "Silenced",
    Flag.DO_NOT_CONTACT: "Do not contact",
}


@functools.lru_cache(maxsize=4096)
def shown_address(value: str) -> str:
    """A number as people read it (+1 415-555-0199); anything else as it is.

    Cached: a contact page shows each of its lines' numbers several times, and
    parsing one costs phonenumbers a tenth of a millisecond."""
    if not value.startswith("+"):
        return value
    try:
        number = phonenumbers.parse(value)
    except phonenumbers.NumberParseException:
        return value
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


@blueprint.app_template_filter("address")
def _address_filter(value: str) -> str:
    return shown_address(value)


# -- find -----------------------------------------------------------------------------------


@blueprint.get("/")
def home() -> ResponseReturnValue:
    """Find a contact by a number in any written form, or an email address."""
    query = request.args.get("q")
    if query is None:
        return page("find.html", nav="find")
    try:
        address = contact_address(query[:400])
    except InvalidAddress as error:
        hint = "Type a phone number such as (415) 555-0199 or +44 20 7946 0958, or an email."
        return page("find.html", 400, nav="find", q=query[:400], error=f"{error.message}. {hint}")
    return redirect(url_for(".contact", address=address.value))


# -- one contact ------------------------------------------------------------------------------


def _seen(org: Organization, address: Address) -> int:
    row = history.find_address(db_session(), org.id, address.value)
    return row.head_seq if row else 0


def _lines_and_groups(org: Organization) -> tuple[list[Line], list[LineGroup]]:
    db = db_session()
    lines = list(db.query(Line).filter_by(organization_id=org.id).order_by(Line.address))
    groups = list(db.query(LineGroup).filter_by(organization_id=org.id).order_by(LineGroup.name))
    return lines, groups


def _preferences(address: Address, **extra: Any) -> dict[str, Any]:
    """What the preferences part of the contact page shows."""
    org = organization()
    topics = keywords().matcher.config.topics
    consent = queries.address_status(db_session(), org, address, topics=topics)
    lines, groups = _lines_and_groups(org)
    is_email = address.kind is AddressKind.EMAIL
    channels = EMAIL_CHANNELS if is_email else PHONE_CHANNELS
    return {
        "address": address,
        "consent": consent,
        "overall": consent.overall(),
        "lines": lines,
        "groups": groups,
        "topics": topics,
        "channels": channels,
        "choosable_channels": [*channels, Channel.ALL],
        # The history position the forms carry, read with the state they show.
        "seen": consent.head_seq,
        "words": STATUS_WORDS,
        "channel_words": CHANNEL_WORDS,
        "flag_words": FLAG_WORDS,
        "Flag": Flag,
        "Status": Status,
        "manager": is_manager(),
        **extra,
    }


@blueprint.get("/contacts/<address>")
def contact(address: str) -> ResponseReturnValue:
    """The contact's overall state, consent on every line, flags and the change forms."""
    found = contact_address(address)
    if found.value != address:
        return redirect(url_for(".contact", address=found.value))
    return page("contact.html", nav="find", **_preferences(found))


def _answer(
    address: Address, done: str | None, refused: OptgateError | None, status: int = 200
) -> ResponseReturnValue:
    """After a change: the preferences part (htmx), or the whole page; a success
    without htmx redirects, so reloading the page does not post the form again."""
    if refused is not None:
        status = 409 if isinstance(refused, ConsentRefused) else 400
        context = _preferences(address, refused=refusal(refused))
        return page("_preferences.html" if wants_fragment() else "contact.html", status, **context)
    if wants_fragment():
        return page("_preferences.html", status, **_preferences(address, done=done))
    if done:
        flash(done)
    return redirect(url_for(".contact", address=address.value) + "#preferences", 303)


def _stale(org: Organization, address: Address) -> OptgateError | None:
    raw = request.form.get("seen", "")
    if raw.isascii() and raw.isdigit() and int(raw) == _seen(org, address):
        return None
    return InvalidChange(
        "This contact's preferences changed since the page was drawn (by someone else, "
        "or by the contact). Nothing was changed: check what is shown now and try again."
    )


def _scope(org: Organization, raw: str) -> tuple[Scope, str]:
    """The scope a form names (``line:ID``, ``group:ID``, ``organization``), and in words."""
    kind, _, number = raw.partition(":")
    db = db_session()
    if kind == "organization":
        return Scope.organization(), f"every line of {org.name}"
    if number.isascii() and number.isdigit():
        if kind == "line":
            line = db.get(Line, int(number))
            if line is not None and line.organization_id == org.id:
                return Scope.line(line.id), f"line {shown_address(line.address)}"
        if kind == "group":
            group = db.get(LineGroup, int(number))
            if group is not None and group.organization_id == org.id:
                return Scope.group(group.id), f"the lines of group {group.name}"
    raise InvalidChange("Where: choose one line, a group or the whole organization.")


def _choice(name: str, allowed: list[str], words: str) -> str:
    value = request.form.get(name, "")
    if value not in allowed:
        raise InvalidChange(f"{words}: choose one of the options.")
    return value


@blueprint.post("/contacts/<address>/consent")
def change_consent(address: str) -> ResponseReturnValue:
    """Opt in or out, on a line, a group or everywhere, for a channel and a topic."""
    found = contact_address(address)
    org = organization()
    try:
        if stale := _stale(org, found):
            return _answer(found, None, stale)
        status = Status(_choice("status", [Status.OPTED_IN, Status.OPTED_OUT], "Change"))
        if status is Status.OPTED_IN and not is_manager():
            raise Forbidden(
                "Agents may opt contacts out but not in; opting in needs a manager, or the "
                "contact texting START."
            )
        channels = EMAIL_CHANNELS if found.kind is AddressKind.EMAIL else PHONE_CHANNELS
        channel = Channel(_choice("channel", [*channels, Channel.ALL], "Channel"))
        scope, where = _scope(org, request.form.get("where", ""))
        topics = keywords().matcher.config.topics
        topic = request.form.get("topic") or None
        if topic is not None and topic not in topics:
            raise InvalidChange("Topic: choose one of the options.")
        outcome = ledger.apply(
            db_session(),
            ledger.Change(
                organization_id=org.id,
                address=found,
                scope=scope,
                status=status,
                source=Source.MANUAL,
                actor=actor(),
                channel=channel,
                topic=topic,
                reason=reason_field(),
            ),
        )
    except (ConsentRefused, InvalidChange) as error:
        db_session().rollback()
        return _answer(found, None, error)
    what = CHANNEL_WORDS[channel] + (f", topic {topics[topic].name}" if topic else "")
    done = (
        f"{STATUS_WORDS[status]}: {what} on {where}."
        if outcome.changed
        else f"Nothing changed: {what} on {where} was {STATUS_WORDS[status].lower()} already."
    )
    _commit(org, found, stops=status is Status.OPTED_OUT)
    return _answer(found, done, None)


#: The flag actions: (flag, set it, needs a manager).
FLAG_ACTIONS = {
    "silence": (Flag.SILENCED, True, False),
    "unsilence": (Flag.SILENCED, False, True),
    "do-not-contact": (Flag.DO_NOT_CONTACT, True, False),
    "clear-bounce": (Flag.BOUNCED, False, True),
}


@blueprint.post("/contacts/<address>/flags")
def change_flag(address: str) -> ResponseReturnValue:
    """Silence, unsilence, do-not-contact (after a confirmation), clear a bounce."""
    found = contact_address(address)
    org = organization()
    try:
        if stale := _stale(org, found):
            return _answer(found, None, stale)
        action = _choice("action", list(FLAG_ACTIONS), "Action")
        flag, set_it, needs_manager = FLAG_ACTIONS[action]
        if needs_manager and not is_manager():
            raise Forbidden(f"{FLAG_WORDS[flag]}: only a manager may lift it.")
        if flag is Flag.DO_NOT_CONTACT and request.form.get("confirm") != "yes":
            # Permanent: the page asks once more, in words, before it is set.
            context = _preferences(found, confirm_do_not_contact=True, reason=reason_field() or "")
            template = "_preferences.html" if wants_fragment() else "contact.html"
            return page(template, **context)
        outcome = ledger.set_flag(
            db_session(),
            ledger.FlagChange(
                organization_id=org.id,
                address=found,
                flag=flag,
                set=set_it,
                source=Source.MANUAL,
                actor=actor(),
                reason=reason_field(),
            ),
        )
    except (ConsentRefused, InvalidChange) as error:
        db_session().rollback()
        return _answer(found, None, error)
    word = FLAG_WORDS[flag]
    if outcome.changed:
        done = f"{word}: set." if set_it else f"{word}: lifted."
    else:
        done = f"Nothing changed: {word.lower()} was {'set' if set_it else 'not set'} already."
    _commit(org, found, stops=set_it)
    return _answer(found, done, None)


def _commit(org: Organization, address: Address, *, stops: bool) -> None:
    db_session().commit()
    if stops:
        # Whatever changed: the page says "opted out" only once nothing is on its way.
        handoff.wait_for_hand_offs(database(), org.id, address.value)


# -- history and messages ------------------------------------------------------------------


def _page_number() -> int:
    raw = request.args.get("page", "1")
    return int(raw) if raw.isascii() and raw.isdigit() and 1 <= int(raw) <= 10**6 else 1


@blueprint.get("/contacts/<address>/history")
def contact_history(address: str) -> ResponseReturnValue:
    """Every change, newest first, a page at a time."""
    found = contact_address(address)
    org = organization()
    newest = _seen(org, found)
    number = _page_number()
    top = newest - (number - 1) * PAGE_SIZE
    after = max(0, top - PAGE_SIZE)
    events: list[dict[str, Any]] = []
    if top > 0:
        events = queries.address_history(
            db_session(), org, found, after_seq=after, limit=top - after
        )[::-1]
    pages = max(1, -(-newest // PAGE_SIZE))
    return page(
        "history.html",
        nav="find",
        address=found,
        events=events,
        number=number,
        pages=pages,
        total=newest,
        words={s.value: w for s, w in STATUS_WORDS.items()},
    )


@blueprint.get("/contacts/<address>/history.csv")
def contact_history_csv(address: str) -> ResponseReturnValue:
    found = contact_address(address)
    events = queries.address_history(db_session(), organization(), found)
    filename = "history-" + "".join(c for c in found.value if c.isalnum()) + ".csv"
    return Response(
        csv_chunks(queries.EVENT_COLUMNS, events),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@blueprint.get("/contacts/<address>/messages")
def contact_messages(address: str) -> ResponseReturnValue:
    """Texts from the contact and messages to them, newest first, with why any was blocked."""
    found = contact_address(address)
    raw = request.args.get("before", "")
    before = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 19 else None
    found_messages = messages_of(
        db_session(), organization().id, found.value, before_id=before, limit=PAGE_SIZE
    )
    older = found_messages[-1].message.id if len(found_messages) == PAGE_SIZE else None
    return page(
        "messages.html",
        nav="find",
        address=found,
        messages=found_messages,
        older=older,
        reasons={reason.value: meaning for reason, meaning in MEANINGS.items()},
    )
