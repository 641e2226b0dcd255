"""Idempotent sends: an `Idempotency-Key` header (the IETF httpapi draft's) makes a retried send
return the reply the first attempt started instead of starting a second one.

A key is claimed, per user, in its own committed transaction before anything else happens, so a
retry reaching any worker finds it: with the same request (method, path and body) it gets the
same reply (rejoined while it streams, its saved outcome after); with another request, 422
`idempotency_key_reused`; while the first attempt is still preparing its reply, 409
`idempotency_key_in_progress`. An attempt refused before its reply starts (a 4xx) frees the key,
so fixing the request and retrying works. Records expire after IDEMPOTENCY_KEY_HOURS.
"""

import hashlib
import logging
import uuid
from dataclasses import dataclass
from datetime import timedelta

from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError

from app.core.background import BackgroundJobs
from app.core.db import Database, utcnow
from app.core.uow import UnitOfWork, unit_of_work
from app.generation.errors import (
    IdempotencyKeyInProgress,
    IdempotencyKeyReused,
    InvalidIdempotencyKey,
)
from app.generation.models import IdempotencyKey
from app.generation.repository import IdempotencyRepository
from app.generation.requests import ReplyKind
from app.generation.resume import SavedReply, chat_reply, generation_reply

logger = logging.getLogger("parley.generation")

# A claim whose request never said which reply it started (its worker died in between) is
# given up after this, so the key is not stuck until it expires.
ABANDONED_AFTER = timedelta(minutes=5)
MAX_KEY_LENGTH = 255


def parse_key(header: str | None) -> str | None:
    """The key of an Idempotency-Key header (a structured-field string: quotes optional), or
    None without one; InvalidIdempotencyKey (400) when it is not 1-255 visible characters."""
    if header is None:
        return None
    key = header.strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not 0 < len(key) <= MAX_KEY_LENGTH or not all(" " <= c <= "~" for c in key):
        raise InvalidIdempotencyKey()
    return key


def fingerprint(method: str, path: str, body: BaseModel | None) -> str:
    """What makes two requests "the same": method, path and body as parsed (so JSON spacing or
    key order does not matter)."""
    payload = body.model_dump_json() if body is not None else "{}"
    return hashlib.sha256(f"{method} {path}\n{payload}".encode()).hexdigest()


@dataclass(frozen=True)
class Claim:
    """A key this request now holds (`record_id`), or a retry's earlier reply (`reply`)."""

    record_id: uuid.UUID | None = None
    reply: SavedReply | None = None


class IdempotencyKeys:
    """Claims keys and records the replies they started, each step in its own short
    transaction (the request's session must not hold a connection meanwhile)."""

    def __init__(
        self,
        db: Database,
        request: UnitOfWork,
        *,
        hours: float,
        jobs: BackgroundJobs,
    ) -> None:
        self.db = db
        self.request = request
        self.lifetime = timedelta(hours=hours)
        self.jobs = jobs

    async def claim(self, user_id: uuid.UUID, key: str, request_fingerprint: str) -> Claim:
        """Takes the key for this request, or finds what an earlier one with it started."""
        # What the request read so far (its user, its chat) stays loaded; its connection goes
        # back to the pool, so the claim's own transaction can commit on its own (and SQLite,
        # one connection, does not wait on itself).
        await self.request.commit()
        for _attempt in range(3):
            record = IdempotencyKey(
                id=uuid.uuid4(),
                user_id=user_id,
                key=key,
                fingerprint=request_fingerprint,
                expires_at=utcnow() + self.lifetime,
            )
            try:
                async with unit_of_work(self.db) as uow:
                    repository = uow.get(IdempotencyRepository)
                    await repository.delete_expired()
                    await repository.add(record)
                return Claim(record_id=record.id)
            except IntegrityError:
                pass  # held already: by an earlier attempt, or by one running right now
            async with unit_of_work(self.db) as uow:
                repository = uow.get(IdempotencyRepository)
                existing = await repository.find(user_id, key)
                if existing is None:
                    continue  # expired and deleted meanwhile: claim it afresh
                if existing.fingerprint != request_fingerprint:
                    raise IdempotencyKeyReused()
                if existing.reply_id is not None:
                    if existing.reply_kind == "generation":
                        return Claim(reply=generation_reply(existing.reply_id))
                    return Claim(reply=chat_reply(existing.reply_id))
                if existing.created_at > utcnow() - ABANDONED_AFTER:
                    raise IdempotencyKeyInProgress()
                await repository.delete(existing.id)
        raise IdempotencyKeyInProgress()

    async def started(self, claim: Claim, kind: ReplyKind, reply_id: uuid.UUID | None) -> None:
        """Records the reply a claimed key started, for its retries."""
        if claim.record_id is None or reply_id is None:
            return
        async with unit_of_work(self.db) as uow:
            await uow.get(IdempotencyRepository).set_reply(claim.record_id, kind, reply_id)

    def release_later(self, claim: Claim) -> None:
        """Frees the key of an attempt refused before its reply started, once the request's
        own transaction (still open on the error's way out) has ended."""
        if claim.record_id is None:
            return
        record_id = claim.record_id

        async def release() -> None:
            try:
                async with unit_of_work(self.db) as uow:
                    await uow.get(IdempotencyRepository).delete(record_id)
            except Exception:
                logger.warning("could not free an idempotency key", exc_info=True)

        self.jobs.spawn("idempotency-release", release)
