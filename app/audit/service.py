"""Reading the audit log (pages and the JSON Lines export) and its retention purge."""

import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from app.audit.repository import AuditFilter, AuditRepository
from app.audit.schemas import AuditCursor, AuditEventRead, AuditPage
from app.audit.writer import AuditWriter
from app.core.background import Supervisor
from app.core.config import Settings
from app.core.db import Database, utcnow
from app.core.uow import UnitOfWork

logger = logging.getLogger("parley.audit")

PURGE_EVERY_SECONDS = 3600
# Events deleted per transaction, so that a large purge never holds long locks.
PURGE_BATCH = 1000
# Events read per transaction by the export.
EXPORT_BATCH = 500


class AuditService:
    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.events = uow.get(AuditRepository)

    async def write_queued(self, writer: AuditWriter) -> None:
        """Writes the events this worker has queued, and waits for a batch the writer loop is
        writing, so that the answer holds every event of the requests this worker finished.
        The request's transaction ends first: the writer's own may need the connection it holds
        (SQLite has one writer)."""
        await self.uow.commit()
        await writer.flush()

    async def page(self, where: AuditFilter, *, limit: int, cursor: str | None) -> AuditPage:
        """Newest first, `limit` a page."""
        after = None
        if cursor is not None:
            position = AuditCursor.decode(cursor)
            after = (position.t, position.i)
        rows = await self.events.page(where, limit=limit + 1, after=after)
        items = [AuditEventRead.model_validate(row) for row in rows[:limit]]
        next_cursor = None
        if len(rows) > limit:
            last = items[-1]
            next_cursor = AuditCursor(t=last.time, i=last.id).encode()
        return AuditPage(items=items, next_cursor=next_cursor)


async def export_lines(db: Database, where: AuditFilter) -> AsyncIterator[bytes]:
    """Every matching event as JSON Lines, newest first. Read EXPORT_BATCH events per short
    transaction, so no connection is held while the client reads."""
    after = None
    while True:
        async with db.transaction() as session:
            rows = await AuditRepository(session).page(where, limit=EXPORT_BATCH, after=after)
        if not rows:
            return
        yield b"".join(
            AuditEventRead.model_validate(row).model_dump_json().encode() + b"\n" for row in rows
        )
        if len(rows) < EXPORT_BATCH:
            return
        after = (rows[-1].time, rows[-1].id)


async def purge_audit(db: Database, settings: Settings, *, batch: int = PURGE_BATCH) -> int:
    """Deletes every event older than AUDIT_DAYS, `batch` events a transaction; the count."""
    before = utcnow() - timedelta(days=settings.audit_days)
    purged = 0
    while True:
        async with db.transaction() as session:
            count = await AuditRepository(session).purge_before(before, limit=batch)
        purged += count
        if count < batch:
            break
    if purged:
        logger.info("purged old audit events", extra={"count": purged})
    return purged


async def start_audit_purge(supervisor: Supervisor, db: Database, settings: Settings) -> None:
    """Purges now, then every hour while the app runs."""
    try:
        await purge_audit(db, settings)
    except Exception:
        logger.warning("start-up audit purge failed", exc_info=True)
    supervisor.every("audit-purge", PURGE_EVERY_SECONDS, lambda: purge_audit(db, settings))
