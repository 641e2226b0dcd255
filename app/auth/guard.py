"""Password checks with account lockout: sign-in, and re-authentication before sensitive changes.

Lockout is keyed by an HMAC of the normalised email, not by user, and unknown emails are counted
and locked exactly like real ones. So a locked answer tells an attacker only that someone failed
five times with that email, which they did themselves; it does not tell whether an account has
it. Every path spends the same bcrypt work (a dummy hash for unknown emails, and a real check
while locked), so timing does not tell either. The lock message must be clear for the real owner,
and it is the same for everyone. The trade-off that remains is the one every lockout has: anyone
can lock an account for LOCKOUT_MINUTES by failing on purpose; per-IP rate limits slow that down,
the owner is mailed, and a password reset (which proves the mailbox) lifts the lock.
"""

import logging
import math
from datetime import datetime, timedelta
from typing import NoReturn

from app.auth.errors import AccountLocked, InvalidCredentials, InvalidPassword
from app.auth.notifications import Notifier
from app.auth.repository import LoginAttemptRepository, UserRepository
from app.core.config import Settings
from app.core.db import utcnow
from app.core.errors import AppError
from app.core.security import PasswordHasher, keyed_digest
from app.users.models import User

security_log = logging.getLogger("parley.security")


def normalise_login_email(email: str) -> str:
    return email.strip().lower()


class CredentialGuard:
    def __init__(
        self,
        *,
        users: UserRepository,
        attempts: LoginAttemptRepository,
        hasher: PasswordHasher,
        notifier: Notifier,
        settings: Settings,
        digest_key: bytes,
    ) -> None:
        self.users = users
        self.attempts = attempts
        self.hasher = hasher
        self.notifier = notifier
        self.settings = settings
        self.digest_key = digest_key

    def _key(self, email: str) -> str:
        return keyed_digest(self.digest_key, "login:" + normalise_login_email(email))

    async def seconds_locked(self, email: str, now: datetime) -> int | None:
        """Seconds until sign-in for `email` unlocks; None when it is not locked."""
        attempt = await self.attempts.get_by_key(self._key(email))
        if attempt is None or attempt.locked_until is None or attempt.locked_until <= now:
            return None
        return max(1, math.ceil((attempt.locked_until - now).total_seconds()))

    async def ensure_not_locked(self, email: str) -> None:
        retry_after = await self.seconds_locked(email, utcnow())
        if retry_after is not None:
            raise AccountLocked(retry_after)

    async def check_login(self, email: str, password: str) -> User:
        """The user whose email and password these are; counts and locks on failure.

        The failure count is not cleared here: for an MFA account the password is only the first
        step, and clearing it now would let someone who knows the password guess codes forever.
        """
        email = normalise_login_email(email)
        now = utcnow()
        # Postgres text cannot hold NUL, so such an email can have no account (and must not
        # reach the query, which would fail).
        user = None if "\x00" in email else await self.users.get_by_email(email)
        retry_after = await self.seconds_locked(email, now)
        # bcrypt takes a quarter of a second: end the read-only transaction first, so that no
        # connection (and on SQLite, not the write lock) is held while it runs.
        await self.users.session.commit()
        # Same bcrypt work on every path, locked or not, known email or not.
        if user is None:
            await self.hasher.verify_dummy(password)
            valid = False
        else:
            valid = await self.hasher.verify(password, user.password_hash)
        if retry_after is not None:
            security_log.warning("sign-in refused: locked", extra={"event": "login_locked"})
            raise AccountLocked(retry_after)
        if user is None or not valid:
            await self.fail(email, user, InvalidCredentials())
        return user

    async def reauthenticate(self, user: User, password: str) -> None:
        """Checks the current password before a sensitive change; wrong ones count towards the
        lockout, or a stolen session could be used to guess the password."""
        await self.ensure_not_locked(user.email)
        if not await self.hasher.verify(password, user.password_hash):
            await self.fail(user.email, user, InvalidPassword())

    async def fail(self, email: str, user: User | None, error: AppError) -> NoReturn:
        """Counts a failed attempt (password or second factor) and raises `error`, or
        AccountLocked when this failure reaches the threshold."""
        now = utcnow()
        key = self._key(email)
        count = await self.attempts.record_failure(key, now)
        threshold = self.settings.lockout_max_attempts
        extra = {"event": "login_failed", "failed_count": count}
        if user is not None:
            extra["target_user_id"] = str(user.id)
        security_log.warning("authentication failed", extra=extra)
        if count >= threshold:
            lock = timedelta(minutes=self.settings.lockout_minutes)
            if await self.attempts.lock(key, until=now + lock, threshold=threshold, now=now):
                security_log.warning("sign-in locked", extra={**extra, "event": "login_lockout"})
                if user is not None:
                    self.notifier.account_locked(user)
            raise AccountLocked(int(lock.total_seconds()))
        raise error

    async def succeed(self, email: str) -> None:
        """A complete success ends the run of consecutive failures."""
        await self.attempts.clear(self._key(email))
