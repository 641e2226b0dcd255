import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, and_, delete, insert, or_, select

from app.audit.models import AuditEvent
from app.core.repository import Repository


@dataclass(frozen=True)
class AuditFilter:
    actor: str | None = None
    # An action name, or a prefix ending in ".*" ("auth.*").
    action: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class AuditRepository(Repository[AuditEvent]):
    model = AuditEvent

    def append(self, event: AuditEvent) -> None:
        """Adds the event to the transaction; it is written with the change it records, at the
        next flush or commit (no round trip of its own)."""
        self.session.add(event)

    async def insert_many(self, rows: list[dict[str, Any]]) -> None:
        """Writes a batch of events (the batched writer's) with one multi-row INSERT."""
        await self.session.execute(_INSERT, rows)

    async def page(
        self,
        where: AuditFilter,
        *,
        limit: int,
        after: tuple[datetime, uuid.UUID] | None = None,
    ) -> Sequence[AuditEvent]:
        """Newest first; `after` is the (time, id) of the last event of the previous page."""
        statement = select(AuditEvent)
        if where.actor is not None:
            statement = statement.where(AuditEvent.actor == where.actor)
        if where.action is not None:
            if where.action.endswith(".*"):
                prefix = where.action[:-1]
                statement = statement.where(
                    AuditEvent.action >= prefix, AuditEvent.action < prefix[:-1] + "/"
                )
            else:
                statement = statement.where(AuditEvent.action == where.action)
        if where.target_type is not None:
            statement = statement.where(AuditEvent.target_type == where.target_type)
        if where.target_id is not None:
            statement = statement.where(AuditEvent.target_id == where.target_id)
        if where.since is not None:
            statement = statement.where(AuditEvent.time >= where.since)
        if where.until is not None:
            statement = statement.where(AuditEvent.time < where.until)
        if after is not None:
            time, id_ = after
            statement = statement.where(
                or_(AuditEvent.time < time, and_(AuditEvent.time == time, AuditEvent.id < id_))
            )
        rows = await self.session.scalars(
            statement.order_by(AuditEvent.time.desc(), AuditEvent.id.desc()).limit(limit)
        )
        return rows.all()

    async def purge_before(self, before: datetime, *, limit: int) -> int:
        """Deletes up to `limit` of the oldest events older than `before`; the count (retention,
        the one delete there is)."""
        ids = select(AuditEvent.id).where(AuditEvent.time < before).limit(limit)
        result = await self.session.execute(delete(AuditEvent).where(AuditEvent.id.in_(ids)))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


# Built once, on the table: the batched writer's statement.
_INSERT = insert(cast(Table, AuditEvent.__table__))
