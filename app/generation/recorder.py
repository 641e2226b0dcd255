"""Saves a streaming reply in short transactions: never a connection held while tokens flow."""

import functools
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import Text, Uuid, bindparam, update

from app.core.db import Database, UTCDateTime, utcnow
from app.generation.runs import RunResult
from app.usage.repository import settle_usage


class RowRecorder:
    """Saves a reply into one row of a table with the reply columns (message or generation)."""

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
            row = await session.get(self.model, self.row_id)
            if row is None:  # deleted while streaming (the chat or the account went away)
                return {"id": str(self.row_id), "status": result.status, "deleted": True}
            row.content = result.text
            row.status = result.status
            row.prompt_tokens = result.prompt_tokens
            row.completion_tokens = result.completion_tokens
            row.usage_estimated = result.usage_estimated
            row.time_to_first_token_ms = result.time_to_first_token_ms
            row.duration_ms = result.duration_ms
            row.error_code = result.error_code
            row.error_message = result.error_message
            await session.flush()
            return self.serialize(row)


@functools.cache
def _checkpoint_statement(model: Any) -> Any:
    """Saves a streaming row's text; built once per table, as every live reply runs it often."""
    return (
        update(model)
        .where(model.id == bindparam("row_id", type_=Uuid), model.status == "streaming")
        .values(
            content=bindparam("text", type_=Text), updated_at=bindparam("now", type_=UTCDateTime)
        )
        .execution_options(synchronize_session=False)
    )
