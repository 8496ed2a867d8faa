"""A token reaches one organisation: through every route of the API, on SQLite and
PostgreSQL, what belongs to another answers exactly as what does not exist.

Two organisations with data in both (lines, a group each, opt-outs, a message, a
campaign, a text waiting for review), an agent and a manager token for each, an
operator token for every organisation, and a token for an organisation that does not
exist yet:

acme                                   beta
├── line +14155550110                  ├── line +14155550120
└── line +14155550111, group acme-west └── line +14155550121, group beta-west

``ROUTES`` has a row for every route of the API blueprint, read from Flask's url_map:
a route added without one fails ``test_every_route_of_the_api_has_a_row``. Each row
lists the ways a request can name something of an organisation (``?organization=``, a
line, a group, an id); for each, a token of acme naming beta's thing must get what it
gets for a thing that does not exist — the same status and the same words, the thing's
name aside — and write nothing, while acme's own thing, and beta's for the operator,
succeed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from app.addresses import normalize, normalize_line
from app.consent import ledger
from app.consent.values import Channel, Scope, Source, Status
from app.data.db import Database
from app.data.models import (
    Campaign,
    ConsentEvent,
    Direction,
    Line,
    Message,
    MessageKind,
    MessageStatus,
    utcnow,
)
from app.lines import add_line, get_or_create_group, get_or_create_organization
from app.settings import Role, Settings
from tests.web.admin import api_app

API = "/api/v1"
CONTACT = "+14155550150"
MISSING_LINE = "+14155550198"
MISSING_ID = 987654
LINES = {"acme": ("+14155550110", "+14155550111"), "beta": ("+14155550120", "+14155550121")}
GROUPS = {"acme": "acme-west", "beta": "beta-west"}
SECRETS = {
    ("acme", Role.AGENT): "acme-agent-" + "a" * 24,
    ("acme", Role.MANAGER): "acme-boss-" + "b" * 24,
    ("beta", Role.AGENT): "beta-agent-" + "c" * 24,
    ("beta", Role.MANAGER): "beta-boss-" + "d" * 24,
}
OPERATOR = "operator-" + "e" * 24
#: A token of an organisation that has no line yet, so does not exist.
GAMMA = "gamma-boss-" + "f" * 24
TOKENS = ",".join(
    [f"{org}-{role.value}:{role.value}:{org}:{secret}" for (org, role), secret in SECRETS.items()]
    + [f"ops:manager:*:{OPERATOR}", f"gamma-boss:manager:gamma:{GAMMA}"]
)


# -- the world ----------------------------------------------------------------------------


@dataclass
class World:
    client: FlaskClient
    database: Database
    #: Per organisation: its id, and the ids of its message, campaign and texts.
    org_ids: dict[str, int] = field(default_factory=dict)
    messages: dict[str, int] = field(default_factory=dict)
    campaigns: dict[str, int] = field(default_factory=dict)

    def review_text(self, org: str) -> int:
        """A new inbound text to the organisation's first line, waiting for review."""
        with self.database.transaction() as session:
            line = _line_id(session, LINES[org][0])
            text = Message(
                organization_id=self.org_ids[org],
                line_id=line,
                direction=Direction.INBOUND,
                address=CONTACT,
                body="please don't text me anymore",
                status=MessageStatus.RECEIVED,
                intent="none",
                needs_review=True,
            )
            session.add(text)
            session.flush()
            return text.id

    def written(self) -> tuple[int, ...]:
        """What requests can write: events (consent and flags), messages, campaigns, and
        texts resolved."""
        with self.database.sessions() as session:
            count = sa.select(sa.func.count())
            return (
                int(session.scalar(count.select_from(ConsentEvent)) or 0),
                int(session.scalar(count.select_from(Message)) or 0),
                int(session.scalar(count.select_from(Campaign)) or 0),
                int(session.scalar(count.where(Message.review_outcome.is_not(None))) or 0),
            )


def _line_id(session: Session, number: str) -> int:
    return int(session.scalars(sa.select(Line.id).where(Line.address == number)).one())


@pytest.fixture
def world(
    make_settings: Callable[..., Settings],
    clean_database_url: str,
    redis_url: str,
    redis_client: Any,
) -> Iterator[World]:
    app = api_app(make_settings, clean_database_url, redis_url, api_tokens=TOKENS)
    database = Database(clean_database_url)
    built = World(app.test_client(), database)
    for org in ("acme", "beta"):
        with database.transaction() as session:
            organization = get_or_create_organization(session, org)
            built.org_ids[org] = organization.id
            first, second = LINES[org]
            line, _ = add_line(session, normalize_line(first), organization)
            group = get_or_create_group(session, organization, GROUPS[org])
            add_line(session, normalize_line(second), organization, group)
            ledger.apply(
                session,
                ledger.Change(
                    organization_id=organization.id,
                    address=normalize(CONTACT),
                    scope=Scope.line(line.id),
                    status=Status.OPTED_OUT,
                    source=Source.KEYWORD,
                    actor=CONTACT,
                    channel=Channel.SMS,
                    via_line_id=line.id,
                ),
            )
            campaign = Campaign(
                organization_id=organization.id,
                line_id=line.id,
                name=f"{org} sale",
                body="Sale! Reply STOP to opt out",
                kind=MessageKind.MARKETING,
                created_by="test",
                enqueued_at=utcnow(),
            )
            session.add(campaign)
            session.flush()
            message = Message(
                organization_id=organization.id,
                line_id=line.id,
                direction=Direction.OUTBOUND,
                address=CONTACT,
                body="Your order shipped",
                kind=MessageKind.TRANSACTIONAL,
                status=MessageStatus.SENT,
                campaign_id=campaign.id,
            )
            session.add(message)
            session.flush()
            built.campaigns[org], built.messages[org] = campaign.id, message.id
    yield built
    database.dispose()
    app.extensions["optgate.database"].dispose()


# -- requests -----------------------------------------------------------------------------

#: What a request names: an organisation's thing, or one that does not exist.
MISSING = "missing"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    data: str | None = None
    content_type: str | None = None
    #: How the answer writes the thing the request names (its name, number or id).
    names: str = ""


def send(world: World, request: Request, secret: str) -> TestResponse:
    options: dict[str, Any] = {"query_string": request.query}
    if request.json is not None:
        options["json"] = request.json
    if request.data is not None:
        options["data"] = request.data
        options["content_type"] = request.content_type
    return world.client.open(
        API + request.path,
        method=request.method,
        headers={"Authorization": f"Bearer {secret}"},
        **options,
    )


def seen(response: TestResponse, request: Request) -> tuple[int, str]:
    """The answer with the thing's own name taken out: what a token learns from it."""
    text = response.get_data(as_text=True)
    return response.status_code, text.replace(request.names, "<named>")


def _org_query(home: str, ask: bool) -> dict[str, str]:
    return {"organization": home} if ask else {}


def org_name(target: str) -> str:
    return "nope" if target == MISSING else target


def line_of(target: str, which: int = 0) -> str:
    return MISSING_LINE if target == MISSING else LINES[target][which]


#: Builds the request naming ``target``'s thing (an organisation, or MISSING) for a
#: caller working in the organisation ``home``, naming it with ``?organization=`` when
#: ``ask`` (an operator token must: there are several).
Build = Callable[[World, str, str, bool], Request]


@dataclass(frozen=True)
class Way:
    """One way a route names an organisation's thing."""

    build: Build
    role: Role
    #: The status when the token reaches the thing.
    success: int = 200
    #: A CSV import answers 200 and reports the row: success is a row that applied.
    import_row: bool = False


def by_organization(path: str, method: str = "GET", **body: Any) -> Build:
    """``?organization=`` names the organisation."""

    def build(world: World, target: str, home: str, ask: bool) -> Request:
        name = org_name(target)
        return Request(method, path, {"organization": name}, body or None, names=name)

    return build


def consent_by_line(world: World, target: str, home: str, ask: bool) -> Request:
    line = line_of(target)
    body = {"status": "opted_out", "scope": "line", "line": line, "actor": "jane"}
    return Request("POST", f"/contacts/{CONTACT}/consent", _org_query(home, ask), body, names=line)


def consent_by_group(world: World, target: str, home: str, ask: bool) -> Request:
    group = "nope" if target == MISSING else GROUPS[target]
    body = {"status": "opted_out", "scope": "group", "group": group, "actor": "jane"}
    return Request("POST", f"/contacts/{CONTACT}/consent", _org_query(home, ask), body, names=group)


def message_by_id(world: World, target: str, home: str, ask: bool) -> Request:
    id_ = MISSING_ID if target == MISSING else world.messages[target]
    return Request("GET", f"/messages/{id_}", names=str(id_))


def campaign_by_id(world: World, target: str, home: str, ask: bool) -> Request:
    id_ = MISSING_ID if target == MISSING else world.campaigns[target]
    return Request("GET", f"/campaigns/{id_}", names=str(id_))


def message_on_line(world: World, target: str, home: str, ask: bool) -> Request:
    line = line_of(target)
    body = {"line": line, "to": CONTACT, "body": "Your order shipped", "kind": "transactional"}
    return Request("POST", "/messages", json=body, names=line)


def message_in_campaign(world: World, target: str, home: str, ask: bool) -> Request:
    id_ = MISSING_ID if target == MISSING else world.campaigns[target]
    body = {
        "line": LINES[home][0],
        "to": CONTACT,
        "body": "Your order shipped",
        "kind": "transactional",
        "campaign": id_,
    }
    return Request("POST", "/messages", json=body, names=str(id_))


def campaign_on_line(world: World, target: str, home: str, ask: bool) -> Request:
    line = line_of(target)
    body = {"line": line, "recipients": [CONTACT], "body": "Sale! Reply STOP to opt out"}
    return Request("POST", "/campaigns", json=body, names=line)


def review_by_id(world: World, target: str, home: str, ask: bool) -> Request:
    id_ = MISSING_ID if target == MISSING else world.review_text(target)
    body = {"resolution": "opt_out", "actor": "jane"}
    return Request("POST", f"/review/{id_}", json=body, names=str(id_))


def keywords_on_line(world: World, target: str, home: str, ask: bool) -> Request:
    line = line_of(target)
    return Request("POST", "/keywords/test", json={"text": "stop", "line": line}, names=line)


def report_on_line(path: str) -> Build:
    def build(world: World, target: str, home: str, ask: bool) -> Request:
        line = line_of(target)
        return Request("GET", path, _org_query(home, ask) | {"line": line}, names=line)

    return build


def import_by_organization(world: World, target: str, home: str, ask: bool) -> Request:
    name = org_name(target)
    csv = f"address,status\n{CONTACT},opted_out\n"
    query = {"organization": name, "actor": "jane"}
    return Request("POST", "/imports/consent", query, data=csv, content_type="text/csv", names=name)


def import_on_line(world: World, target: str, home: str, ask: bool) -> Request:
    line = line_of(target)
    csv = f"address,status,line\n{CONTACT},opted_out,{line}\n"
    query = _org_query(home, ask) | {"actor": "jane"}
    return Request("POST", "/imports/consent", query, data=csv, content_type="text/csv", names=line)


CONTACT_PATH = f"/contacts/{CONTACT}"
FLAG = {"actor": "jane"}
#: Every route of the API blueprint: (method, endpoint) -> the ways it names an
#: organisation's thing. The document itself holds nothing of any organisation.
PUBLIC: list[Way] = []
ROUTES: dict[tuple[str, str], list[Way]] = {
    ("GET", "api.openapi"): PUBLIC,
    ("GET", "api.consent"): [Way(by_organization(f"{CONTACT_PATH}/consent"), Role.AGENT)],
    ("POST", "api.change_consent"): [
        Way(
            by_organization(
                f"{CONTACT_PATH}/consent",
                "POST",
                status="opted_out",
                scope="organization",
                actor="jane",
            ),
            Role.AGENT,
        ),
        Way(consent_by_line, Role.AGENT),
        Way(consent_by_group, Role.AGENT),
    ],
    ("POST", "api.silence"): [
        Way(by_organization(f"{CONTACT_PATH}/silence", "POST", **FLAG), Role.AGENT)
    ],
    ("POST", "api.unsilence"): [
        Way(by_organization(f"{CONTACT_PATH}/unsilence", "POST", **FLAG), Role.MANAGER)
    ],
    ("POST", "api.do_not_contact"): [
        Way(by_organization(f"{CONTACT_PATH}/do-not-contact", "POST", **FLAG), Role.AGENT)
    ],
    ("POST", "api.clear_bounce"): [
        Way(by_organization(f"{CONTACT_PATH}/clear-bounce", "POST", **FLAG), Role.MANAGER)
    ],
    ("GET", "api.history"): [Way(by_organization(f"{CONTACT_PATH}/history"), Role.AGENT)],
    ("POST", "api.create_message"): [
        Way(message_on_line, Role.AGENT, 202),
        Way(message_in_campaign, Role.MANAGER, 202),
    ],
    ("GET", "api.message"): [Way(message_by_id, Role.AGENT)],
    ("POST", "api.create_campaign"): [Way(campaign_on_line, Role.MANAGER, 202)],
    ("GET", "api.campaign"): [Way(campaign_by_id, Role.AGENT)],
    ("GET", "api.review_queue"): [Way(by_organization("/review"), Role.AGENT)],
    ("POST", "api.resolve"): [Way(review_by_id, Role.AGENT)],
    ("POST", "api.test_keywords"): [Way(keywords_on_line, Role.AGENT)],
    ("GET", "api.export_events"): [
        Way(by_organization("/exports/consent-events.csv"), Role.MANAGER),
        Way(report_on_line("/exports/consent-events.csv"), Role.MANAGER),
    ],
    ("GET", "api.snapshot"): [
        Way(by_organization("/reports/snapshot"), Role.MANAGER),
        Way(report_on_line("/reports/snapshot"), Role.MANAGER),
    ],
    ("POST", "api.import_consent"): [
        Way(import_by_organization, Role.MANAGER),
        Way(import_on_line, Role.MANAGER, import_row=True),
    ],
}
WAYS = [
    pytest.param(way, id=f"{route[1].removeprefix('api.')}-{way.build.__name__}-{number}")
    for route, ways in ROUTES.items()
    for number, way in enumerate(ways)
]


def routes_of(world: World) -> set[tuple[str, str]]:
    app = world.client.application
    return {
        (method, rule.endpoint)
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("api.")
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS")
    }


@pytest.mark.parametrize("clean_database_url", ["sqlite"], indirect=True)
def test_every_route_of_the_api_has_a_row(world: World) -> None:
    routes = routes_of(world)
    assert routes == set(ROUTES), (
        f"routes without a row in ROUTES (add how each names an organisation's thing): "
        f"{sorted(routes - set(ROUTES))}; rows without a route: {sorted(set(ROUTES) - routes)}"
    )
    public = [route for route, ways in ROUTES.items() if ways is PUBLIC]
    assert public == [("GET", "api.openapi")]
    # The one public route: the same document to anyone, without a token.
    document = world.client.get(f"{API}/openapi.json")
    assert document.status_code == 200
    for secret in (SECRETS["acme", Role.AGENT], OPERATOR, GAMMA):
        shown = world.client.get(
            f"{API}/openapi.json", headers={"Authorization": f"Bearer {secret}"}
        )
        assert shown.get_data() == document.get_data()


def succeeded(response: TestResponse, way: Way) -> bool:
    if response.status_code != way.success:
        return False
    if way.import_row:
        [row] = response.get_json()["results"]
        return bool(row["result"] in ("applied", "unchanged"))
    return True


def tokens_of(org: str, way: Way) -> list[str]:
    """The organisation's tokens whose role may take this way."""
    roles = [Role.AGENT, Role.MANAGER] if way.role is Role.AGENT else [Role.MANAGER]
    return [SECRETS[org, role] for role in roles]


@pytest.mark.parametrize("way", WAYS)
def test_another_organizations_thing_answers_as_one_that_does_not_exist(
    world: World, way: Way
) -> None:
    for org, other in (("acme", "beta"), ("beta", "acme")):
        for secret in tokens_of(org, way):
            # Built first: building a review request adds the text it names.
            crossing = way.build(world, other, org, False)
            missing = way.build(world, MISSING, org, False)
            before = world.written()

            across, absent = send(world, crossing, secret), send(world, missing, secret)

            if way.import_row:
                assert across.status_code == 200, across.get_data(as_text=True)
                [row] = across.get_json()["results"]
                assert row["result"] == "invalid"
            else:
                assert across.status_code == 404, across.get_data(as_text=True)
                assert across.get_json()["error"] == "NotFound"
            assert seen(across, crossing) == seen(absent, missing)
            assert other not in seen(across, crossing)[1].replace(crossing.names, "")
            assert world.written() == before, "a refused request wrote something"

            own = send(world, way.build(world, org, org, False), secret)
            assert succeeded(own, way), own.get_data(as_text=True)


@pytest.mark.parametrize("way", WAYS)
def test_the_operator_token_reaches_every_organization(world: World, way: Way) -> None:
    for org in ("acme", "beta"):
        response = send(world, way.build(world, org, org, True), OPERATOR)
        assert succeeded(response, way), response.get_data(as_text=True)


@pytest.mark.parametrize("way", WAYS)
def test_a_token_of_an_organization_that_does_not_exist_yet_answers_404(
    world: World, way: Way
) -> None:
    request = way.build(world, "acme", "acme", False)  # first: it may add a text
    before = world.written()

    response = send(world, request, GAMMA)

    assert response.status_code == 404, response.get_data(as_text=True)
    assert response.get_json() == {
        "error": "NotFound",
        "message": "there is no organization 'gamma' yet, and the token 'gamma-boss' reaches "
        "only that one: it begins with its first line "
        "(`optgate lines add NUMBER --organization gamma`)",
    }
    assert world.written() == before


def test_a_token_may_name_its_own_organization(world: World) -> None:
    response = send(
        world,
        Request("GET", f"{CONTACT_PATH}/consent", {"organization": "acme"}),
        SECRETS["acme", Role.AGENT],
    )

    assert response.status_code == 200
    body = response.get_json()
    assert body["organization"] == "acme"
    assert [entry["line"] for entry in body["lines"]] == [
        line for line in LINES["acme"] for _channel in ("sms", "voice")
    ]


def test_the_answers_of_a_token_never_name_another_organization(world: World) -> None:
    """The unknown organisation's 404 lists the known ones to an operator only."""
    path = f"{CONTACT_PATH}/consent"
    scoped = send(
        world, Request("GET", path, {"organization": "nope"}), SECRETS["acme", Role.AGENT]
    )
    operator = send(world, Request("GET", path, {"organization": "nope"}), OPERATOR)

    assert scoped.get_json()["message"] == (
        "there is no organization 'nope' for the token 'acme-agent', which reaches "
        "organization 'acme' only"
    )
    assert operator.get_json()["message"] == "there is no organization 'nope' (known: acme, beta)"


def test_the_review_queue_lists_only_the_tokens_organizations_texts(world: World) -> None:
    mine, theirs = world.review_text("acme"), world.review_text("beta")

    page = send(world, Request("GET", "/review"), SECRETS["acme", Role.AGENT]).get_json()

    assert [text["id"] for text in page["texts"]] == [mine]
    assert theirs > mine
