"""The purge of the trash: chats deleted more than TRASH_DAYS ago go for good, at start-up and
then every hour. Until the purge reaches them they can no longer be seen or restored (the service
looks only TRASH_DAYS back), so its timing is not part of the contract."""

import logging
from datetime import timedelta

from app.chats.repository import ChatRepository
from app.core.background import Supervisor
from app.core.config import Settings
from app.core.db import Database, utcnow

logger = logging.getLogger("parley.chats")

PURGE_EVERY_SECONDS = 3600
# Chats deleted per transaction, so that a large purge never holds long locks.
PURGE_BATCH = 200


async def purge_trash(db: Database, settings: Settings, *, batch: int = PURGE_BATCH) -> int:
    """Deletes every chat that has been in the trash for more than TRASH_DAYS, `batch` chats a
    transaction; returns the count."""
    before = utcnow() - timedelta(days=settings.trash_days)
    purged = 0
    while True:
        async with db.transaction() as session:
            count = await ChatRepository(session).purge_trashed(before=before, limit=batch)
        purged += count
        if count < batch:
            break
    if purged:
        logger.info("purged chats from the trash", extra={"count": purged})
    return purged


async def start_trash_purge(supervisor: Supervisor, db: Database, settings: Settings) -> None:
    """Purges the trash now, then every hour while the app runs."""
    try:
        await purge_trash(db, settings)
    except Exception:
        logger.warning("start-up trash purge failed", exc_info=True)
    supervisor.every("trash-purge", PURGE_EVERY_SECONDS, lambda: purge_trash(db, settings))
