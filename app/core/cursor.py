"""Opaque pagination cursors: URL-safe base64 of a small JSON object tagged with its listing.

Each listing declares its cursor as a `Cursor` model. A cursor comes back from the client, so it
is decoded into that model strictly: anything that does not fit (another listing's cursor, a
number where an id belongs, a naive time, extra fields) is InvalidCursor, a 400, never a 500.
"""

import base64
import binascii
from typing import Annotated, Self

from fastapi import Query
from pydantic import BaseModel, ConfigDict, ValidationError

from app.core.errors import CURSOR_MESSAGE, AppError

# The alphabet encode() produces; anything else cannot be a cursor.
CURSOR_PATTERN = r"^[A-Za-z0-9_-]+$"
CURSOR_MAX_LENGTH = 512


class InvalidCursor(AppError):
    status_code = 400
    code = "invalid_cursor"
    message = CURSOR_MESSAGE


class Cursor(BaseModel):
    """Base of every listing's cursor; subclasses add `k: Literal["<listing>"]` and their keys."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    def encode(self) -> str:
        raw = self.model_dump_json().encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, cursor: str) -> Self:
        """The cursor's position; InvalidCursor for anything encode() of this class did not make."""
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            # JSON mode: strict, yet ids and times are read from their string forms.
            return cls.model_validate_json(raw)
        except (binascii.Error, ValueError, ValidationError) as exc:
            raise InvalidCursor() from exc


CursorQuery = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=CURSOR_MAX_LENGTH,
        pattern=CURSOR_PATTERN,
        description="`next_cursor` (or older/newer) of the previous page; omit for the first.",
    ),
]
