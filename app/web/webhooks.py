"""Provider webhooks: ``POST /webhooks/<provider>/messages`` and ``/status``.

Thin on purpose: verify → parse → apply in one transaction → commit → answer.
Forged or unsigned requests get 403 before anything is read from or written
to the database; a signed request for another provider account gets 403 too;
a request the provider signed but that carries no message (or values no
column can hold) gets 400; a database that cannot commit gets 503
(errors.py), never a 2xx.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import quote, urlsplit

from flask import Blueprint, Response, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import BadRequest, Forbidden

from app.logs import mask_text
from app.messages import inbound, receipts
from app.providers import get_provider
from app.providers.base import ForeignWebhook, MalformedWebhook, Provider, WebhookRequest
from app.sending import handoff
from app.settings import Settings
from app.web import database, keywords, session, settings

log = logging.getLogger("optgate.webhooks")
T = TypeVar("T")
blueprint = Blueprint("webhooks", __name__, url_prefix="/webhooks")

#: Characters left as they are when a path is re-encoded (RFC 3986 path characters).
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


@blueprint.post("/<provider_name>/messages")
def messages(provider_name: str) -> ResponseReturnValue:
    """An inbound text: its consent change is committed before the reply is sent."""
    provider = _provider(provider_name)
    signed = _verified(provider)
    text = _parse(lambda: provider.parse_inbound(signed))
    db = session()
    with db.begin():
        # A text sent to something that is no number (To) is found out only here.
        handled = _parse(lambda: inbound.handle(db, provider, text, keywords().matcher, settings()))
    if handled.fence:
        # Committed; before it is answered, no message to the number may still be
        # on its way to the provider (DESIGN.md rule 2, app/sending/handoff.py).
        handoff.wait_for_hand_offs(database(), *handled.fence)
    reply = provider.render_reply(handled.reply)
    return Response(reply.body, content_type=reply.content_type)


@blueprint.post("/<provider_name>/status")
def status(provider_name: str) -> ResponseReturnValue:
    """A delivery receipt; unknown message ids are kept and still answered 200."""
    provider = _provider(provider_name)
    signed = _verified(provider)
    update = _parse(lambda: provider.parse_status(signed))
    db = session()
    with db.begin():
        receipts.handle(db, provider, update, our_id=_our_message_id())
    # 200 with nothing in it: the provider ignores the body, and any 2xx stops its retries.
    return Response("", status=200, content_type="text/plain")


def _our_message_id() -> int | None:
    """The message id our status-callback URL carries (``?message=42``), if any.

    It is part of the signed URL, so the provider vouches for it; it ties a
    receipt to a message whose hand-off was cut off before the provider's id
    was recorded (see app/sending/sender.py).
    """
    raw = request.args.get("message", "")
    return int(raw) if raw.isdigit() and len(raw) < 19 else None


def _provider(name: str) -> Provider:
    return get_provider(name, settings())


def _verified(provider: Provider) -> WebhookRequest:
    signed = WebhookRequest(
        url=signed_url(settings()),
        method=request.method,
        headers={name.lower(): value for name, value in request.headers.items()},
        # The raw body first (and cached), so the form is parsed from it too.
        body=request.get_data(cache=True, parse_form_data=False),
        form=list(request.form.items(multi=True)),
        content_type=request.mimetype,
    )
    if settings().verify_signatures and not provider.verify(signed):
        # The URL is for the operator only: it may hold a basic-auth password, and
        # it tells a prober what to forge for. Masked: anyone can send a Host header.
        log.warning(
            "refused a %s webhook with a wrong or missing signature (the URL checked: %s)",
            provider.name,
            _shown_url(signed.url),
        )
        raise Forbidden(
            f"the request's signature does not match: it was not sent by {provider.name}, or "
            "optgate checks it against another URL or key than the provider signed with. "
            "Check OPTGATE_PUBLIC_URL and OPTGATE_TRUSTED_PROXIES (optgate's log names the "
            "URL it checked) and the provider's auth token"
        )
    return signed


def _shown_url(url: str) -> str:
    """``url`` for a log line: no basic-auth password, no phone number."""
    try:
        netloc = urlsplit(url).netloc
    except ValueError:
        return "(a URL that cannot be read)"
    # The last "@" ends the credentials, as urllib (and so the signature check) reads them.
    userinfo, at, host = netloc.rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        # A user without a password may be a token: hidden too.
        shown = f"{user}:***@{host}" if colon else f"***@{host}"
        url = url.replace(netloc, shown, 1)
    return mask_text(url)


def _parse(parse: Callable[[], T]) -> T:
    try:
        return parse()
    except MalformedWebhook as error:
        raise BadRequest(str(error)) from None
    except ForeignWebhook as error:
        log.warning("refused a signed webhook: %s", error)
        raise Forbidden(str(error)) from None


def signed_url(settings: Settings) -> str:
    """The URL the provider called, as it signed it.

    The path and query are taken as they arrived (gunicorn's RAW_URI), never
    decoded and re-encoded: signatures break on re-encoded query strings
    (docs/compliance.md, Webhook signatures). The scheme and host come from
    OPTGATE_PUBLIC_URL, or from the request itself, which trusted proxies may have set
    (X-Forwarded-Proto/Host, through ProxyFix; see app/__init__.py).
    """
    environ = request.environ
    target = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if not target:
        query = environ.get("QUERY_STRING", "")
        target = quote(environ.get("PATH_INFO", ""), safe=_PATH_SAFE) + (
            f"?{query}" if query else ""
        )
    if settings.public_url:
        return settings.public_url + target
    return f"{request.scheme}://{request.host}{request.script_root}{target}"
