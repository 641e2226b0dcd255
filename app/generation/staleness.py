"""When a reply still marked `streaming` has lost the process that ran it."""

from datetime import timedelta

from app.core.config import Settings

# A live reply is checkpointed every STREAM_CHECKPOINT_SECONDS; one silent for this many
# checkpoints, and for at least STREAM_STALE_SECONDS (so a briefly overloaded database does not
# look like a dead process), belongs to a process that died.
STALE_AFTER_CHECKPOINTS = 5


def stale_after(settings: Settings) -> timedelta:
    seconds = settings.stream_checkpoint_seconds * STALE_AFTER_CHECKPOINTS
    return timedelta(seconds=max(seconds, settings.stream_stale_seconds))
