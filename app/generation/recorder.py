"""Saves a streaming reply in short transactions: never a connection held while tokens flow."""

import functools
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import Boolean, Integer, String, Text, Uuid, bindparam, update

from app.core.db import Database, UTCDateTime, utcnow
from app.generation.runs import RunResult
from app.usage.repository import settle_usage


class RowRecorder:
    """Saves a reply into one row of a table with the reply columns (message or generation).

    `serialize` turns the saved row (a result row with the table's columns) into the `done`
    event's data."""

    def __init__(
        self,
        db: Database,
        model: Any,
        row_id: uuid.UUID,
        *,
        usage_id: uuid.UUID | None = None,
        serialize: Callable[[Any], dict[str, Any]],
    ) -> None:
        self.db = db
        self.model = model
        self.row_id = row_id
        self.usage_id = usage_id
        self.serialize = serialize

    async def checkpoint(self, text: str) -> None:
        async with self.db.transaction() as session:
            await session.execute(
                _checkpoint_statement(self.model),
                {"row_id": self.row_id, "text": text, "now": utcnow()},
            )

    async def finish(self, result: RunResult) -> dict[str, Any]:
        async with self.db.transaction() as session:
            if self.usage_id is not None:
                # A reply that failed before its first token, with no usage from the upstream,
                # cost nothing: its reservation is released rather than charged.
                charged = result.time_to_first_token_ms is not None or not result.usage_estimated
                await settle_usage(
                    session,
                    self.usage_id,
                    prompt_tokens=result.prompt_tokens if charged else 0,
                    completion_tokens=result.completion_tokens if charged else 0,
                    estimated=result.usage_estimated,
                )
            # One statement saves the outcome and returns the saved row for the `done` event.
            saved = await session.execute(
                _finish_statement(self.model),
                {
                    "row_id": self.row_id,
                    "new_text": result.text,
                    "new_status": result.status,
                    "new_prompt_tokens": result.prompt_tokens,
                    "new_completion_tokens": result.completion_tokens,
                    "new_estimated": result.usage_estimated,
                    "new_ttft": result.time_to_first_token_ms,
                    "new_duration": result.duration_ms,
                    "new_error_code": result.error_code,
                    "new_error_message": result.error_message,
                },
            )
            row = saved.first()
            if row is None:  # deleted while streaming (the chat or the account went away)
                return {"id": str(self.row_id), "status": result.status, "deleted": True}
            return self.serialize(row)


# The statements are built once per table, and on the table rather than the ORM class: an
# ORM-enabled UPDATE goes through the ORM's bulk-update machinery each time it runs (0.1 ms of
# CPU more than the same UPDATE on the table, here), and these run for every reply and every
# checkpoint.


@functools.cache
def _checkpoint_statement(model: Any) -> Any:
    """Saves a streaming row's text."""
    table = model.__table__
    return (
        update(table)
        .where(table.c.id == bindparam("row_id", type_=Uuid), table.c.status == "streaming")
        .values(
            content=bindparam("text", type_=Text), updated_at=bindparam("now", type_=UTCDateTime)
        )
    )


@functools.cache
def _finish_statement(model: Any) -> Any:
    """Saves a reply's outcome and returns the row."""
    table = model.__table__
    return (
        update(table)
        .where(table.c.id == bindparam("row_id", type_=Uuid))
        .values(
            content=bindparam("new_text", type_=Text),
            status=bindparam("new_status", type_=String),
            prompt_tokens=bindparam("new_prompt_tokens", type_=Integer),
            completion_tokens=bindparam("new_completion_tokens", type_=Integer),
            usage_estimated=bindparam("new_estimated", type_=Boolean),
            time_to_first_token_ms=bindparam("new_ttft", type_=Integer),
            duration_ms=bindparam("new_duration", type_=Integer),
            error_code=bindparam("new_error_code", type_=String),
            error_message=bindparam("new_error_message", type_=Text),
        )
        .returning(*table.c)
    )
