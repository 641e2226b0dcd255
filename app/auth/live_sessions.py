"""Sessions behind long-lived connections (the chat WebSocket), kept under watch.

An HTTP request checks its access token's session as it starts, and ends soon after; a WebSocket
stays open for hours. So each worker keeps the sessions of its open sockets and checks them all,
in one query every CHECK_SECONDS, against the same rows HTTP reads (the session's `revoked_at`
and `expires_at`, the user's `is_active`). A socket whose session was revoked (logout, logout
everywhere, a password change or reset, MFA enabled, refresh-token reuse), whose user was
disabled, or whose access token expired is told within a second, whichever worker did it.
"""

import asyncio
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime

from app.auth.repository import AuthSessionRepository, SessionStanding
from app.core.db import Database, utcnow
from app.core.uow import unit_of_work

logger = logging.getLogger("parley.auth")

# How often the sessions of open sockets are checked: a revocation reaches them within this.
CHECK_SECONDS = 0.5
# Sessions checked per query (bound parameters have limits).
CHECK_BATCH = 500


@dataclass(frozen=True)
class SessionEnding:
    """Why a socket's session ended: its error event's code and message, and the close reason."""

    code: str
    message: str


REVOKED = SessionEnding("session_revoked", "The session was signed out or revoked.")
DISABLED = SessionEnding("account_disabled", "This account is disabled.")
EXPIRED = SessionEnding(
    "token_expired", "The access token expired; send a `reauth` frame with a new one in time."
)


@dataclass(eq=False)
class LiveSession:
    """The session a socket authenticated with, and the expiry of the access token it used."""

    user_id: uuid.UUID
    session_id: uuid.UUID
    expires_at: datetime
    ending: SessionEnding | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    def end(self, ending: SessionEnding) -> None:
        if self.ending is None:
            self.ending = ending
            self.ended.set()

    def renew(self, session_id: uuid.UUID, expires_at: datetime) -> None:
        """A newer access token of the same user (a `reauth` frame)."""
        if self.ending is None:
            self.session_id, self.expires_at = session_id, expires_at

    def still_valid(self, now: datetime | None = None) -> bool:
        """False once the session ended or the token expired (which ends it)."""
        if self.ending is None and (now or utcnow()) >= self.expires_at:
            self.end(EXPIRED)
        return self.ending is None

    def judge(self, standing: SessionStanding | None, now: datetime) -> None:
        """Ends the session if its row says it no longer stands."""
        if standing is None or standing.revoked_at is not None or standing.expires_at <= now:
            self.end(REVOKED)
        elif not standing.user_active:
            self.end(DISABLED)


class LiveSessions:
    """The sessions of this worker's open sockets, checked in one query every CHECK_SECONDS
    while any is open."""

    def __init__(self, db: Database, *, interval: float = CHECK_SECONDS) -> None:
        self.db = db
        self.interval = interval
        self._watched: set[LiveSession] = set()
        self._checker: asyncio.Task[None] | None = None

    @contextmanager
    def watching(self, live: LiveSession) -> Iterator[LiveSession]:
        """Keeps `live` under watch for the block."""
        self._watched.add(live)
        if self._checker is None or self._checker.done():
            self._checker = asyncio.create_task(self._check_while_watched(), name="live-sessions")
        try:
            yield live
        finally:
            self._watched.discard(live)

    async def _check_while_watched(self) -> None:
        while self._watched:
            await asyncio.sleep(self.interval)
            try:
                await self.check()
            except Exception:
                # A database hiccup: the next round tries again; frames are checked anyway.
                logger.warning("could not check the sessions of open sockets", exc_info=True)

    async def check(self) -> None:
        """Ends the watched sessions that expired, were revoked or whose user was disabled."""
        now = utcnow()
        # Each with the session id it had now: a `reauth` meanwhile is judged next round.
        live = [(s, s.session_id) for s in self._watched if s.still_valid(now)]
        ids = list({session_id for _session, session_id in live})
        standing: dict[uuid.UUID, SessionStanding] = {}
        for start in range(0, len(ids), CHECK_BATCH):
            async with unit_of_work(self.db) as uow:
                rows = await uow.get(AuthSessionRepository).standing(
                    ids[start : start + CHECK_BATCH]
                )
            standing.update((row.session_id, row) for row in rows)
        for session, session_id in live:
            if session.session_id == session_id:
                session.judge(standing.get(session_id), now)

    async def close(self) -> None:
        if self._checker is not None:
            self._checker.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await self._checker
