"""`record()`: how every package writes an audit event.

The event joins the caller's unit of work (no flush, no round trip of its own): it is written
with the change it records, at that transaction's commit, and rolled back with it. A refusal
that must still be recorded (a failed sign-in) raises an error with `commit_changes`, which
commits the transaction before the error answer goes out (app/core/db.py).
"""

import logging
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import HTTPConnection

from app.audit.actions import ANONYMOUS, SUCCEEDED, SYSTEM
from app.audit.models import AuditEvent
from app.audit.repository import AuditRepository
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


def _client() -> tuple[str | None, str | None]:
    """The IP address (X-Forwarded-For only from TRUSTED_PROXIES) and user agent of the request
    being served; (None, None) outside a request (a background job)."""
    scope = request_scope_var.get()
    if scope is None:
        return None, None
    connection = HTTPConnection(scope)
    user_agent = connection.headers.get("user-agent")
    runtime = getattr(scope.get("app"), "state", None)
    resolver = getattr(getattr(runtime, "runtime", None), "client_ips", None)
    if resolver is not None:
        ip = resolver.client_ip(connection)
    else:
        ip = connection.client.host if connection.client else None
    return ip, (user_agent[:255] if user_agent else None)


async def record(
    uow: UnitOfWork,
    action: str,
    *,
    target: Target | None = None,
    outcome: str = SUCCEEDED,
    actor: uuid.UUID | str | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Adds an audit event to `uow`'s transaction.

    `actor`: the user who acted; by default the request's signed-in user, else "system" outside
    a request and "anonymous" inside one. `details`: a few small facts, never a secret (fields
    named like one are dropped)."""
    scope = request_scope_var.get()
    if actor is None:
        actor = user_id_var.get() or (ANONYMOUS if scope is not None else SYSTEM)
    ip, user_agent = _client()
    uow.get(AuditRepository).append(
        AuditEvent(
            time=utcnow(),
            actor=str(actor),
            action=action,
            target_type=target.type if target is not None else None,
            target_id=(str(target.id) if target is not None and target.id is not None else None),
            outcome=outcome,
            ip=ip,
            user_agent=user_agent,
            request_id=request_id_var.get(),
            details=clean_details(details),
        )
    )
