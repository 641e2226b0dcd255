"""Where a reply is saved: in short transactions, never a connection held while tokens flow."""

import uuid
from collections.abc import Callable
from typing import Any

from app.core.db import Database
from app.generation.reply_stream import ReplyResult
from app.generation.repository import ReplyRepository, ReplyTable
from app.usage.repository import UsageRepository


class ReplySaver:
    """Saves a reply into its row: a chat message or a stateless generation (same columns).

    `serialize` turns the saved row (a result row with the table's columns) into the `done`
    event's data."""

    def __init__(
        self,
        db: Database,
        table: ReplyTable,
        row_id: uuid.UUID,
        *,
        usage_id: uuid.UUID | None = None,
        serialize: Callable[[Any], dict[str, Any]],
    ) -> None:
        self.db = db
        self.table = table
        self.row_id = row_id
        self.usage_id = usage_id
        self.serialize = serialize

    async def checkpoint(self, text: str) -> None:
        """Saves the text so far; also tells the stale-reply sweep that the reply is alive."""
        async with self.db.transaction() as session:
            await ReplyRepository(session).checkpoint(self.table, self.row_id, text)

    async def finish(self, result: ReplyResult) -> dict[str, Any]:
        """Saves how the reply ended and settles its usage; returns the `done` event's data."""
        async with self.db.transaction() as session:
            if self.usage_id is not None:
                # A reply that failed before its first token, with no usage from the upstream,
                # cost nothing: its reservation is released rather than charged.
                charged = result.time_to_first_token_ms is not None or not result.usage_estimated
                served = result.served_by or {}
                await UsageRepository(session).settle(
                    self.usage_id,
                    prompt_tokens=result.prompt_tokens if charged else 0,
                    completion_tokens=result.completion_tokens if charged else 0,
                    estimated=result.usage_estimated,
                    model=served.get("model"),
                    deployment=served.get("deployment"),
                )
            row = await ReplyRepository(session).finish(self.table, self.row_id, result)
            if row is None:  # deleted while streaming (the chat or the account went away)
                return {"id": str(self.row_id), "status": result.status, "deleted": True}
            return self.serialize(row)
