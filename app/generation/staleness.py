"""When a reply still marked `streaming` has lost the process that ran it."""

from datetime import timedelta

from app.core.config import Settings

# A live reply is checkpointed every STREAM_CHECKPOINT_SECONDS; one silent for this many
# checkpoints (and at least STALE_MIN_SECONDS, so a briefly overloaded database does not look
# like a dead process) belongs to a process that died.
STALE_AFTER_CHECKPOINTS = 5
STALE_MIN_SECONDS = 30.0


def stale_after(settings: Settings) -> timedelta:
    seconds = settings.stream_checkpoint_seconds * STALE_AFTER_CHECKPOINTS
    return timedelta(seconds=max(seconds, STALE_MIN_SECONDS))
