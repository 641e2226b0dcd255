"""`record()`: how every package writes an audit event.

An event belongs to the caller's unit of work: it is written if and only if that transaction
commits, never for a change rolled back. In a request it goes, once the unit commits, to the
app's batched writer (app/audit/writer.py): no statement and no round trip of its own on the
request's path. A refusal that must still be recorded (a failed sign-in) raises an error with
`commit_changes`, which commits the transaction before the error answer goes out
(app/core/db.py), and so writes its event.
"""

import logging
import re
import uuid
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import HTTPConnection

from app.audit.actions import ANONYMOUS, SUCCEEDED, SYSTEM
from app.audit.models import AuditEvent
from app.audit.repository import AuditRepository
from app.audit.writer import AuditWriter
from app.core.db import utcnow
from app.core.logging import request_id_var, request_scope_var, user_id_var
from app.core.uow import UnitOfWork

logger = logging.getLogger("parley.audit")

# Field names that could hold a credential: never stored, whatever the caller passed.
_SECRET_FIELD = re.compile(
    r"pass(word|wd|phrase)?|secret|token|credential|api_?key|^key$|_key$|^code$|otp|cookie",
    re.IGNORECASE,
)
MAX_DETAIL_FIELDS = 20
MAX_DETAIL_TEXT = 200


@dataclass(frozen=True)
class Target:
    """What an event is about: a type ("user", "api_key", "session", "group", ...) and its id."""

    type: str
    id: uuid.UUID | str | None = None


def clean_details(details: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The details as stored: fields named like a credential dropped (and logged, so the caller
    gets fixed), text cut to MAX_DETAIL_TEXT, at most MAX_DETAIL_FIELDS fields."""
    if not details:
        return None
    cleaned: dict[str, Any] = {}
    for name, value in details.items():
        if _SECRET_FIELD.search(name):
            logger.warning("audit detail dropped: it may hold a secret", extra={"field": name})
            continue
        if len(cleaned) >= MAX_DETAIL_FIELDS:
            break
        cleaned[name] = _small(value)
    return cleaned or None


def _small(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return value[:MAX_DETAIL_TEXT]
    if isinstance(value, list | tuple | set | frozenset):
        return [_small(item) for item in list(value)[:MAX_DETAIL_FIELDS]]
    if isinstance(value, Mapping):
        return clean_details(value)
    return str(value)[:MAX_DETAIL_TEXT]


def _request_parts(
    scope: MutableMapping[str, Any] | None,
) -> tuple[str | None, str | None, AuditWriter | None]:
    """The client's IP address (X-Forwarded-For only from TRUSTED_PROXIES) and user agent, and
    the app's batched writer; all None outside a request (a background job)."""
    if scope is None:
        return None, None, None
    connection = HTTPConnection(scope)
    user_agent = connection.headers.get("user-agent")
    runtime = getattr(getattr(scope.get("app"), "state", None), "runtime", None)
    resolver = getattr(runtime, "client_ips", None)
    if resolver is not None:
        ip = resolver.client_ip(connection)
    else:
        ip = connection.client.host if connection.client else None
    writer = getattr(runtime, "audit_writer", None)
    return ip, (user_agent[:255] if user_agent else None), writer


async def record(
    uow: UnitOfWork,
    action: str,
    *,
    target: Target | None = None,
    outcome: str = SUCCEEDED,
    actor: uuid.UUID | str | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Records an audit event of `uow`'s transaction: written if and only if it commits.

    In a request, the event waits for the commit and then goes to the app's batched writer
    (app/audit/writer.py); outside one, it is added to the transaction itself.

    `actor`: the user who acted; by default the request's signed-in user, else "system" outside
    a request and "anonymous" inside one. `details`: a few small facts, never a secret (fields
    named like one are dropped)."""
    scope = request_scope_var.get()
    if actor is None:
        actor = user_id_var.get() or (ANONYMOUS if scope is not None else SYSTEM)
    ip, user_agent, writer = _request_parts(scope)
    row = {
        "id": uuid.uuid4(),
        "time": utcnow(),
        "actor": str(actor),
        "action": action,
        "target_type": target.type if target is not None else None,
        "target_id": str(target.id) if target is not None and target.id is not None else None,
        "outcome": outcome,
        "ip": ip,
        "user_agent": user_agent,
        "request_id": request_id_var.get(),
        "details": clean_details(details),
    }
    if writer is not None:
        uow.after_commit(lambda: writer.add(row))
    else:
        uow.get(AuditRepository).append(AuditEvent(**row))
