"""Opaque pagination cursors: URL-safe base64 of a small JSON object tagged with its listing."""

import base64
import binascii
import json
from typing import Any

from app.core.errors import AppError


class InvalidCursor(AppError):
    status_code = 400
    code = "invalid_cursor"
    message = "The cursor is malformed or belongs to another listing; start from the first page."


def encode_cursor(kind: str, payload: dict[str, Any]) -> str:
    raw = json.dumps({"k": kind, **payload}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, kind: str) -> dict[str, Any]:
    """The payload of a cursor made by encode_cursor() for the same listing; InvalidCursor else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise InvalidCursor() from exc
    if not isinstance(payload, dict) or payload.get("k") != kind:
        raise InvalidCursor()
    return payload
