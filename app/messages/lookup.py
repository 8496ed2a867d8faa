"""One contact's messages, newest first: what they texted, and what was sent to them
with its status and block reason ("why didn't my text go out?")."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from app.data.models import Line, Message


@dataclass(frozen=True)
class MessageView:
    message: Message
    #: The line's number (or short code) and name.
    line: str
    line_name: str | None


def messages_of(
    session: Session, organization_id: int, address: str, *, before_id: int | None, limit: int
) -> list[MessageView]:
    """``address``'s messages in the organisation, newest first, older than ``before_id``."""
    query = (
        sa.select(Message, Line.address, Line.name)
        .join(Line, Line.id == Message.line_id)
        .where(Message.organization_id == organization_id, Message.address == address)
        .order_by(Message.id.desc())
        .limit(limit)
    )
    if before_id is not None:
        query = query.where(Message.id < before_id)
    return [MessageView(message, line, name) for message, line, name in session.execute(query)]
