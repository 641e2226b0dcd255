"""Moderation events are written off the request's and the reply's path: `record()` counts the
event in the metrics at once and queues it; a background job writes what is queued in one short
transaction. A refused request rolls its own transaction back, and a streaming reply holds no
connection, so neither could write the event itself."""

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from app.core.background import BackgroundJobs
from app.core.db import Database, utcnow
from app.core.metrics import Metrics
from app.guardrails.models import ModerationEvent
from app.guardrails.repository import ModerationRepository

logger = logging.getLogger("parley.guardrails")


@dataclass(frozen=True)
class EventContext:
    """Whose request and which chat, message or generation an event is about."""

    user_id: uuid.UUID | None = None
    chat_id: uuid.UUID | None = None
    message_id: uuid.UUID | None = None
    generation_id: uuid.UUID | None = None


@dataclass
class Event:
    point: str
    check: str
    category: str
    action: str
    context: EventContext
    detail: dict[str, Any] | None = None
    blocked_text: str | None = None
    created_at: Any = field(default_factory=utcnow)


class ModerationRecorder:
    def __init__(self, db: Database, metrics: Metrics | None) -> None:
        self._db = db
        self._metrics = metrics
        self._queue: list[Event] = []
        self._jobs = BackgroundJobs()
        self._writing = False

    def record(self, event: Event) -> None:
        if self._metrics is not None:
            self._metrics.guardrail_events.labels(event.point, event.check, event.action).inc()
        logger.info(
            "guardrail event",
            extra={
                "point": event.point,
                "check": event.check,
                "category": event.category,
                "action": event.action,
                "user_id": str(event.context.user_id) if event.context.user_id else None,
            },
        )
        self._queue.append(event)
        if not self._writing:
            self._writing = True
            self._jobs.spawn("moderation-events", self._write_queued)

    async def _write_queued(self) -> None:
        try:
            await self._write()
        finally:
            self._writing = False  # no await since the queue was last found empty

    async def _write(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                async with self._db.transaction() as session:
                    await ModerationRepository(session).add_all(
                        [
                            ModerationEvent(
                                created_at=e.created_at,
                                user_id=e.context.user_id,
                                chat_id=e.context.chat_id,
                                message_id=e.context.message_id,
                                generation_id=e.context.generation_id,
                                point=e.point,
                                check=e.check,
                                category=e.category[:200],
                                action=e.action,
                                detail=e.detail,
                                blocked_text=e.blocked_text,
                            )
                            for e in batch
                        ]
                    )
            except Exception:
                # The metrics and the log line have it; the database row is lost.
                logger.exception("could not save moderation events", extra={"count": len(batch)})

    async def drain(self) -> None:
        """Waits until every queued event is written (shutdown, tests)."""
        await self._jobs.drain()
