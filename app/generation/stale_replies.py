"""Replies left `streaming` by a process that died: when one counts as stale, and the sweep
that marks such replies `interrupted` (at start-up and periodically)."""

import logging
from datetime import timedelta

from app.core.config import Settings
from app.core.db import Database, utcnow
from app.generation.repository import ReplyRepository

logger = logging.getLogger("parley.generation")

# A live reply is checkpointed every STREAM_CHECKPOINT_SECONDS; one silent for this many
# checkpoints, and for at least STREAM_STALE_SECONDS (so a briefly overloaded database does not
# look like a dead process), belongs to a process that died.
STALE_AFTER_CHECKPOINTS = 5


def stale_after(settings: Settings) -> timedelta:
    seconds = settings.stream_checkpoint_seconds * STALE_AFTER_CHECKPOINTS
    return timedelta(seconds=max(seconds, settings.stream_stale_seconds))


async def sweep_interrupted(db: Database, settings: Settings) -> int:
    """Marks replies left `streaming` by a crashed process as `interrupted`."""
    async with db.transaction() as session:
        count = await ReplyRepository(session).mark_stale_interrupted(
            older_than=utcnow() - stale_after(settings)
        )
    if count:
        logger.warning("marked interrupted replies", extra={"count": count})
    return count
