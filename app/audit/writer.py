"""The audit log's batched writer: events of committed requests, written a batch at a time.

A request's events wait in memory until its unit of work commits (`uow.after_commit`), then join
this worker's queue; the `audit-writer` loop writes the queue every WRITE_EVERY_SECONDS (sooner
when BATCH events wait) with one multi-row INSERT in a transaction of its own. So an event costs
a sign-in no statement and no round trip of its own (bench/README.md has the figures), and a
refusal that commits (a failed sign-in) is written like any other; a request that rolls back
writes none. Reading the log writes this worker's queue first (after any batch in hand);
shutdown writes what is left.
The price: a worker that dies loses at most the last WRITE_EVERY_SECONDS of its events.
"""

import asyncio
import contextlib
import logging
from typing import Any

from app.audit.repository import AuditRepository
from app.core.db import Database

logger = logging.getLogger("parley.audit")

WRITE_EVERY_SECONDS = 0.5
BATCH = 500
# Events kept while the database refuses them; past this the oldest are dropped (and logged).
MAX_PENDING = 100_000


class AuditWriter:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._pending: list[dict[str, Any]] = []
        self._lock = asyncio.Lock()
        self._full = asyncio.Event()

    def add(self, row: dict[str, Any]) -> None:
        """Queues one event (a committed request's)."""
        self._pending.append(row)
        if len(self._pending) >= BATCH:
            self._full.set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def flush(self) -> int:
        """Writes every queued event now; the count. A failed write keeps them for the next."""
        async with self._lock:
            rows, self._pending = self._pending, []
            self._full.clear()
            if not rows:
                return 0
            written = 0
            try:
                while written < len(rows):
                    chunk = rows[written : written + BATCH]
                    async with self._db.transaction() as session:
                        await AuditRepository(session).insert_many(chunk)
                    written += len(chunk)
            except Exception:
                self._pending[:0] = rows[written:]
                if len(self._pending) > MAX_PENDING:
                    dropped = len(self._pending) - MAX_PENDING
                    del self._pending[:dropped]
                    logger.error("audit events dropped", extra={"count": dropped})
                raise
            return len(rows)

    async def run(self) -> None:
        """The `audit-writer` loop: writes the queue every WRITE_EVERY_SECONDS, or when full."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._full.wait(), WRITE_EVERY_SECONDS)
            try:
                await self.flush()
            except Exception:
                logger.warning("audit events not written yet; retrying", exc_info=True)
                await asyncio.sleep(WRITE_EVERY_SECONDS)
