"""The OpenAPI document (app/web/api/openapi.yaml) against what the API does.

The document served at /api/v1/openapi.json is the YAML file, a valid OpenAPI
3.0 document that lists every route of the API and nothing else. Schemathesis
then drives every operation through the real app (SQLite, the test Redis):
schema-valid requests must get an answer the document lists, in its content
type and shape, and are never refused for their shape; schema-violating ones
must get a documented 4xx. Hand-written requests check each operation's
success answer and the refusals generation rarely reaches, and the role each
operation says it needs (``x-role``) is the role it enforces.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from ruamel.yaml import YAML
from schemathesis.checks import CheckContext
from schemathesis.core.failures import Failure
from schemathesis.core.transport import Response
from werkzeug.test import TestResponse

from app import create_app
from app.addresses import normalize, normalize_line
from app.consent import ledger
from app.consent.values import Channel, Scope, Source, Status
from app.data import migrate
from app.data.db import Database
from app.data.models import MessageKind
from app.lines import add_line, get_or_create_group, get_or_create_organization
from app.settings import Settings
from app.web.api.openapi import SPEC
from tests.conftest import SHIPPED_KEYWORDS, TWILIO_SID, TWILIO_TOKEN, add_inbound

PREFIX = "/api/v1"
DOCUMENT: dict[str, Any] = YAML(typ="safe").load(SPEC.read_text(encoding="utf-8"))
#: (method, path) -> the operation's definition, for every operation of the document.
OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    (method.upper(), path): operation
    for path, item in DOCUMENT["paths"].items()
    for method, operation in item.items()
    if method in ("get", "put", "post", "delete", "patch")
}
OPERATION_IDS = [f"{method} {path}" for method, path in sorted(OPERATIONS)]
BY_ID = {operation["operationId"]: key for key, operation in OPERATIONS.items()}

AGENT_SECRET = "a" * 32
MANAGER_SECRET = "m" * 32
#: Tokens of the organisation "default", the only one: schemathesis works as one of its managers.
API_TOKENS = f"agent1:agent:default:{AGENT_SECRET},boss:manager:default:{MANAGER_SECRET}"
LINE = "+14155550100"
OTHER_LINE = "+14155550101"
#: Opted out of LINE by texting STOP: no one but the contact can lift that.
OPTED_OUT = "+14155550123"
#: Opted in to price_drop by staff, organisation-wide.
OPTED_IN = "+14155550124"

#: Why a schema-valid request may still answer 400: what a JSON schema cannot say.
#: Anything else (a missing field, a wrong type, a value not in the enum) would mean
#: that the document allows what the API refuses.
SEMANTIC_REFUSALS = re.compile(
    "|".join(
        [
            r"is not a valid address",  # any text may be some number's written form
            r"is not a topic of keywords\.yaml",  # topics are configuration
            r"there is no topic",
            r"^since: must be before until",
            r"is not a line of",  # a line of another organisation
            r"does not apply to",  # a channel of the other kind of address
            r"email consent is kept for the whole organization",
            r"only an opt_out takes a topic",
            r"which is not a phone number",  # a review of a text from a short code
            r"is out of range",  # a time with no UTC equivalent (year 1, +01:00)
            r"^line \d+: ",  # a CSV file's header
        ]
    )
)


# -- the app under test -----------------------------------------------------------------


class Served:
    """The app under test as schemathesis's WSGI app: schemathesis takes the app when
    the module is loaded, the ``api`` fixture builds it when the tests run."""

    app: Flask | None = None

    def __call__(self, environ: Any, start_response: Any) -> Any:
        assert self.app is not None, "the api fixture serves the app"
        return self.app(environ, start_response)


SERVED = Served()


@dataclass
class Api:
    app: Flask
    database: Database
    message_id: int
    campaign_id: int

    def call(
        self, method: str, path: str, secret: str | None = MANAGER_SECRET, **kwargs: Any
    ) -> TestResponse:
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        return self.app.test_client().open(PREFIX + path, method=method, headers=headers, **kwargs)

    def review_text(self, sender: str, body: str = "please don't text me anymore") -> int:
        """An inbound text to LINE waiting for review; its id."""
        return add_inbound(self.database, LINE, sender, body, needs_review=True)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Api]:
    """The app on a fresh SQLite database: the organisation "default" with LINE (group
    "main") and OTHER_LINE, two contacts with consent, a message, a campaign and a text
    waiting for review."""
    url = f"sqlite:///{tmp_path_factory.mktemp('openapi') / 'optgate.sqlite3'}"
    migrate.upgrade(url)
    queue = redis.Redis.from_url(redis_url)
    queue.flushdb()
    app = create_app(
        Settings(
            keywords_path=SHIPPED_KEYWORDS,
            twilio_account_sid=TWILIO_SID,
            twilio_auth_token=TWILIO_TOKEN,
        ).replace(database_url=url, api_tokens=API_TOKENS, redis_url=redis_url, quiet_hours="off")
    )
    database = Database(url)
    with database.transaction() as session:
        organization = get_or_create_organization(session, "default")
        group = get_or_create_group(session, organization, "main")
        line, _ = add_line(session, normalize_line(LINE), organization, group, name="Main")
        add_line(session, normalize_line(OTHER_LINE), organization)
        for address, scope, status, source, topic in [
            (OPTED_OUT, Scope.line(line.id), Status.OPTED_OUT, Source.KEYWORD, None),
            (OPTED_IN, Scope.organization(), Status.OPTED_IN, Source.MANUAL, "price_drop"),
        ]:
            change = ledger.Change(
                organization_id=organization.id,
                address=normalize(address),
                scope=scope,
                status=status,
                source=source,
                actor="=jane" if source is Source.MANUAL else address,
                channel=Channel.SMS,
                topic=topic,
            )
            ledger.apply(session, change)
    outbox = app.extensions["optgate.outbox"]
    message_id = outbox.message(LINE, OPTED_OUT, "Your order shipped", MessageKind.TRANSACTIONAL)
    campaign = outbox.campaign(LINE, [OPTED_IN, "nope"], "Sale! Reply STOP to opt out")
    served = Api(app, database, message_id, campaign.id)
    served.review_text("+14155550125")
    SERVED.app = app
    yield served
    SERVED.app = None
    database.dispose()
    app.extensions["optgate.database"].dispose()
    queue.flushdb()
    queue.close()


# -- the document -----------------------------------------------------------------------


def test_the_served_document_is_the_yaml_file_and_valid_openapi(api: Api) -> None:
    response = api.call("GET", "/openapi.json", secret=None)
    assert response.status_code == 200
    assert response.get_json() == DOCUMENT
    assert DOCUMENT["openapi"] == "3.0.3"
    # Checks the document against the OpenAPI 3.0 schema (raises what is wrong).
    schemathesis.openapi.from_dict(DOCUMENT).validate()


def _documented_path(rule: str) -> str:
    """A Flask rule as an OpenAPI path: /review/<int(max=9):id> -> /review/{id}."""
    return re.sub(r"<(?:[^<>:]*:)?(\w+)>", r"{\1}", rule).removeprefix(PREFIX)


def test_every_route_of_the_api_is_documented_and_every_documented_operation_exists(
    api: Api,
) -> None:
    routes = {
        (method, _documented_path(rule.rule))
        for rule in api.app.url_map.iter_rules()
        if rule.rule.startswith(PREFIX + "/")
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS")
    }
    documented = set(OPERATIONS)
    assert routes == documented, (
        f"undocumented routes: {sorted(routes - documented)}; "
        f"documented operations without a route: {sorted(documented - routes)}"
    )


@pytest.mark.parametrize(("method", "path"), sorted(OPERATIONS), ids=OPERATION_IDS)
def test_every_operation_has_a_snake_case_id_and_says_its_role(method: str, path: str) -> None:
    operation = OPERATIONS[method, path]
    assert re.fullmatch(r"[a-z]+(_[a-z]+)*", operation["operationId"])
    role = operation["x-role"]
    assert role in ("none", "agent", "manager")
    if role == "none":
        assert operation["security"] == []
    else:
        assert "security" not in operation  # the global bearer token
        assert f"Role: {role}" in operation["description"]
        assert "401" in operation["responses"]
        # An agent operation with a part that needs a manager (opting in, a campaign).
        partly_manager = operation["operationId"] in ("change_consent", "create_message")
        assert ("403" in operation["responses"]) == (role == "manager" or partly_manager)
        # Whatever a token of one organisation cannot reach is a 404.
        assert "404" in operation["responses"]


# -- generated requests -----------------------------------------------------------------


def _schema(mode: str) -> Any:
    config = schemathesis.Config.from_dict(
        {
            "generation": {
                "mode": mode,
                # The API ignores query parameters it does not know, on purpose.
                "allow-extra-parameters": False,
            },
            # Module constants (secrets, numbers) are not interesting inputs.
            "analysis": {"constants": {"enabled": False}},
            # Schemathesis sends the token itself, so that it can also leave it out.
            "auth": {"openapi": {"bearer": {"bearer": MANAGER_SECRET}}},
            # 400 is judged by schema_valid_input_is_refused_only_for_its_meaning.
            "checks": {
                "positive_data_acceptance": {
                    "expected-statuses": ["2xx", "400", "401", "403", "404", "409"]
                }
            },
        }
    )
    schema = schemathesis.openapi.from_dict(DOCUMENT, config=config)
    schema.app = SERVED
    return schema


POSITIVE = _schema("positive")
# A text/csv body is any text on the wire: no request violates its schema. The document
# itself takes no input.
NEGATIVE = _schema("negative").exclude(operation_id=["import_consent", "get_openapi"])
GENERATED = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def schema_valid_input_is_refused_only_for_its_meaning(
    ctx: CheckContext, response: Response, case: schemathesis.Case[Any]
) -> None:
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return
    if response.status_code == 400:
        message = response.json()["message"]
        if not SEMANTIC_REFUSALS.search(message):
            raise Failure(
                operation=case.operation.label,
                title="A request the document allows was refused for its shape",
                message=f"400: {message}",
            )


@POSITIVE.parametrize()
@GENERATED
def test_every_schema_valid_request_gets_a_documented_answer(
    api: Api, case: schemathesis.Case[Any]
) -> None:
    # No 5xx; status, content type, headers and body as documented; no 400 but for
    # SEMANTIC_REFUSALS; requests without the token get 401.
    case.call_and_validate(additional_checks=[schema_valid_input_is_refused_only_for_its_meaning])


@NEGATIVE.parametrize()
@GENERATED
def test_every_schema_violating_request_gets_a_documented_refusal(
    api: Api, case: schemathesis.Case[Any]
) -> None:
    case.call_and_validate()


# -- hand-written requests --------------------------------------------------------------

#: Documented answers checked with hand-written requests, without the token schemathesis
#: adds (so that 401 and 403 can be asked for).
HAND_WRITTEN = schemathesis.openapi.from_dict(
    DOCUMENT,
    config=schemathesis.Config.from_dict({"analysis": {"constants": {"enabled": False}}}),
)
HAND_WRITTEN.app = SERVED
NO_BODY = object()


@dataclass(frozen=True)
class Call:
    """A request to one operation and the status it must get."""

    operation: str
    status: int
    path: dict[str, Any] = field(default_factory=dict)
    query: dict[str, Any] | None = None
    body: Any = NO_BODY
    media_type: str = "application/json"
    secret: str | None = MANAGER_SECRET
    #: Makes path parameters that need rows of their own (a fresh text to review).
    prepare: Callable[[Api], dict[str, Any]] | None = None


def _resolved_text(api: Api) -> dict[str, Any]:
    id_ = api.review_text("+14155550127")
    resolution = {"resolution": "dismissed", "actor": "jane"}
    assert api.call("POST", f"/review/{id_}", json=resolution).status_code == 200
    return {"id": id_}


#: An import: a row applied, one refused (an import never lifts an opt-out), one invalid.
CSV = (
    "address,status,line,reason\n"
    f"+14155550128,opted_out,{LINE},paper form\n"
    f"{OPTED_OUT},opted_in,,\n"
    "nope,opted_out,,\n"
)
CALLS = {
    "openapi": Call("get_openapi", 200, secret=None),
    "consent": Call("get_consent", 200, {"address": OPTED_OUT}),
    "consent-email": Call("get_consent", 200, {"address": "Jane@Example.com"}),
    "consent-not-an-address": Call("get_consent", 400, {"address": "nope"}),
    "consent-no-organization": Call(
        "get_consent", 404, {"address": OPTED_OUT}, {"organization": "other"}
    ),
    "consent-no-token": Call("get_consent", 401, {"address": OPTED_OUT}, secret=None),
    "opt-out": Call(
        "change_consent",
        200,
        {"address": "+14155550129"},
        body={"status": "opted_out", "scope": "line", "line": LINE, "actor": "jane"},
    ),
    "opt-in-topic": Call(
        "change_consent",
        200,
        {"address": "+14155550129"},
        body={
            "status": "opted_in",
            "scope": "group",
            "group": "main",
            "channel": "all",
            "topic": "new_arrival",
            "actor": "jane",
            "reason": None,
        },
    ),
    "opt-in-refused": Call(
        "change_consent",
        409,
        {"address": OPTED_OUT},
        body={"status": "opted_in", "scope": "organization", "actor": "jane"},
    ),
    "opt-in-by-agent": Call(
        "change_consent",
        403,
        {"address": OPTED_OUT},
        body={"status": "opted_in", "scope": "organization", "actor": "jane"},
        secret=AGENT_SECRET,
    ),
    "silence": Call("silence_contact", 200, {"address": "+14155550130"}, body={"actor": "jane"}),
    "unsilence": Call("unsilence_contact", 200, {"address": "+14155550130"}, body={"actor": "j"}),
    "do-not-contact": Call(
        "set_do_not_contact", 200, {"address": "+14155550131"}, body={"actor": "jane"}
    ),
    "clear-bounce": Call("clear_bounce", 200, {"address": OPTED_OUT}, body={"actor": "jane"}),
    "history": Call("get_history", 200, {"address": OPTED_IN}, {"limit": 1}),
    "history-limit": Call("get_history", 400, {"address": OPTED_IN}, {"limit": 0}),
    "export": Call("export_consent_events", 200, query={"since": "2026-01-01", "line": [LINE]}),
    "export-order": Call(
        "export_consent_events",
        400,
        query={"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
    ),
    "snapshot": Call("get_snapshot", 200, query={"line": [LINE, OTHER_LINE]}),
    "snapshot-csv": Call("get_snapshot", 200, query={"format": "csv", "status": "opted_out"}),
    "snapshot-by-agent": Call("get_snapshot", 403, secret=AGENT_SECRET),
    "import": Call("import_consent", 200, query={"actor": "jane"}, body=CSV, media_type="text/csv"),
    "import-form": Call(
        "import_consent",
        200,
        query={"actor": "jane"},
        body={"file": CSV.encode()},
        media_type="multipart/form-data",
    ),
    "import-bad-header": Call(
        "import_consent", 400, query={"actor": "jane"}, body="who,what\n", media_type="text/csv"
    ),
    "import-json": Call("import_consent", 415, query={"actor": "jane"}, body={"rows": []}),
    "review-queue": Call("get_review_queue", 200, query={"limit": 1}),
    "review": Call(
        "resolve_review",
        200,
        body={"resolution": "opt_out", "actor": "jane", "topic": "price_drop"},
        prepare=lambda api: {"id": api.review_text("+14155550126")},
    ),
    "review-again": Call(
        "resolve_review",
        409,
        body={"resolution": "opt_out", "actor": "jane"},
        prepare=_resolved_text,
    ),
    "review-unknown": Call(
        "resolve_review", 404, {"id": 2**63 - 1}, body={"resolution": "opt_out", "actor": "j"}
    ),
    "keywords": Call("test_keywords", 200, body={"text": "stop price drop", "line": LINE}),
    "keywords-no-line": Call("test_keywords", 200, body={"text": "", "line": None}),
    "keywords-not-a-line-of-the-token": Call(
        "test_keywords", 404, body={"text": "stop", "line": "+14155550199"}
    ),
    "keywords-nul": Call("test_keywords", 400, body={"text": "st\x00op"}),
    "opt-out-nul-reason": Call(
        "change_consent",
        400,
        {"address": "+14155550129"},
        body={"status": "opted_out", "scope": "organization", "actor": "j", "reason": "a\x00"},
    ),
    "message": Call(
        "create_message",
        202,
        body={"line": LINE, "to": OPTED_IN, "body": "Hi", "kind": "marketing", "campaign": 1},
    ),
    "message-in-a-campaign-by-agent": Call(
        "create_message",
        403,
        body={"line": LINE, "to": OPTED_IN, "body": "Hi", "kind": "marketing", "campaign": 1},
        secret=AGENT_SECRET,
    ),
    "message-unknown-line": Call(
        "create_message",
        404,
        body={"line": "+14155550199", "to": OPTED_IN, "body": "Hi", "kind": "marketing"},
    ),
    "read-message": Call(
        "get_message", 200, prepare=lambda api: {"id": api.message_id}, secret=AGENT_SECRET
    ),
    "campaign": Call(
        "create_campaign",
        202,
        body={"line": LINE, "recipients": [OPTED_IN, "x"], "body": "Sale", "kind": ""},
    ),
    "read-campaign": Call("get_campaign", 200, prepare=lambda api: {"id": api.campaign_id}),
    "read-campaign-unknown": Call("get_campaign", 404, {"id": 2**31 - 1}),
}


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
def test_each_answer_has_the_documented_status_and_shape(api: Api, call: Call) -> None:
    method, path = BY_ID[call.operation]
    path_parameters = call.prepare(api) if call.prepare else call.path
    case = HAND_WRITTEN[path][method].Case(
        path_parameters=path_parameters,
        query=call.query,
        **({} if call.body is NO_BODY else {"body": call.body, "media_type": call.media_type}),
    )
    headers = {"Authorization": f"Bearer {call.secret}"} if call.secret else {}
    response = case.call_and_validate(headers=headers)
    assert response.status_code == call.status, response.text


def test_the_hand_written_requests_reach_every_operations_success() -> None:
    succeeded = {call.operation for call in CALLS.values() if call.status < 300}
    assert succeeded == set(BY_ID)


def test_a_csv_answer_is_the_documented_columns(api: Api) -> None:
    events = api.call("GET", "/exports/consent-events.csv")
    assert events.mimetype == "text/csv"
    header = next(io.StringIO(events.get_data(as_text=True))).rstrip("\n")
    example = DOCUMENT["paths"]["/exports/consent-events.csv"]["get"]["responses"]["200"]
    assert header == example["content"]["text/csv"]["example"].rstrip("\n")
    snapshot = api.call("GET", "/reports/snapshot", query_string={"format": "csv"})
    header = next(io.StringIO(snapshot.get_data(as_text=True))).rstrip("\n")
    example = DOCUMENT["paths"]["/reports/snapshot"]["get"]["responses"]["200"]
    assert header == example["content"]["text/csv"]["example"].rstrip("\n")


# -- roles ------------------------------------------------------------------------------


def _request(method: str, path: str) -> tuple[str, dict[str, Any]]:
    """The operation's URL with OPTED_OUT and 1 for its path parameters, and an empty JSON
    object as the body of a POST: enough to pass or fail the role check, which comes
    first, and to change nothing after it."""
    url = path.replace("{address}", OPTED_OUT).replace("{id}", "1")
    return url, ({"json": {}} if method == "POST" else {})


@pytest.mark.parametrize(("method", "path"), sorted(OPERATIONS), ids=OPERATION_IDS)
def test_each_operation_enforces_the_role_it_documents(api: Api, method: str, path: str) -> None:
    role = OPERATIONS[method, path]["x-role"]
    url, body = _request(method, path)
    anonymous = api.call(method, url, secret=None, **body)
    agent = api.call(method, url, secret=AGENT_SECRET, **body)
    if role == "none":
        assert (anonymous.status_code, agent.status_code) == (200, 200)
        return
    assert anonymous.status_code == 401
    assert anonymous.get_json()["error"] == "Unauthorized"
    assert anonymous.headers["WWW-Authenticate"] == "Bearer realm=optgate"
    if role == "manager":
        assert agent.status_code == 403, agent.get_data(as_text=True)
        assert agent.get_json()["error"] == "Forbidden"
    else:
        assert agent.status_code not in (401, 403), agent.get_data(as_text=True)
