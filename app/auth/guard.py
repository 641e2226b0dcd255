"""Password checks with account lockout: sign-in, and re-authentication before sensitive changes.

Lockout is keyed by an HMAC of the normalised email, not by user, and unknown emails are counted
and locked exactly like real ones. So a locked answer tells an attacker only that someone failed
five times with that email, which they did themselves; it does not tell whether an account has
it. A known and an unknown email spend the same bcrypt work (a dummy hash for unknown ones), so
timing does not tell either; a locked email spends none, whoever has it.

Every check takes one of the run's LOCKOUT_MAX_ATTEMPTS attempts atomically in the database
*before* it runs (see LoginAttemptRepository.reserve), so concurrent requests, on one worker or
many, never get more guesses than that per lock window; a check that passes gives its attempt
back. Once the attempts are used up every request is refused, a right password included, until
the lock expires. The lock message must be clear for the real owner,
and it is the same for everyone. The trade-off that remains is the one every lockout has: anyone
can lock an account for LOCKOUT_MINUTES by failing on purpose; per-IP rate limits slow that down,
the owner is mailed, and a password reset (which proves the mailbox) lifts the lock.
"""

import logging
import math
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import NoReturn

from app import audit
from app.audit import actions
from app.auth.errors import AccountLocked, InvalidCredentials, InvalidPassword
from app.auth.models import LoginAttempt
from app.auth.notifications import Notifier
from app.auth.repository import LoginAttemptRepository
from app.core.config import Settings
from app.core.db import utcnow
from app.core.emails import canonical_email
from app.core.errors import AppError
from app.core.metrics import Metrics
from app.core.security import PasswordHasher, keyed_digest
from app.core.uow import UnitOfWork
from app.users.models import User
from app.users.repository import UserRepository

security_log = logging.getLogger("parley.security")

# Factors, as labelled in the parley_credential_checks metric.
PASSWORD = "password"  # noqa: S105 - a label, not a password
SECOND_FACTOR = "second_factor"


class CredentialGuard:
    def __init__(
        self,
        *,
        uow: UnitOfWork,
        users: UserRepository,
        attempts: LoginAttemptRepository,
        hasher: PasswordHasher,
        notifier: Notifier,
        settings: Settings,
        digest_key: bytes,
        metrics: Metrics,
    ) -> None:
        self.uow = uow
        self.users = users
        self.attempts = attempts
        self.hasher = hasher
        self.notifier = notifier
        self.settings = settings
        self.digest_key = digest_key
        self.metrics = metrics

    def _key(self, email: str) -> str:
        return keyed_digest(self.digest_key, "login:" + canonical_email(email))

    async def check_login(self, email: str, password: str) -> User:
        """The user whose email and password these are; counts and locks on failure.

        The run of failures is not ended here: for an MFA account the password is only the first
        step, and ending it now would let someone who knows the password guess codes forever.
        """
        email = canonical_email(email)
        await self._reserve(email, PASSWORD, sign_in="password")
        # Postgres text cannot hold NUL, so such an email can have no account (and must not
        # reach the query, which would fail).
        user = None if "\x00" in email else await self.users.get_by_email(email)
        # bcrypt takes a quarter of a second: end the transaction first, so that no connection
        # (and on SQLite, not the write lock) is held while it runs.
        await self.uow.commit()
        # Same bcrypt work for a known and an unknown email.
        if user is None:
            await self.hasher.verify_dummy(password)
            await self.fail(email, None, InvalidCredentials(), sign_in="password")
        if not await self.hasher.verify(password, user.password_hash):
            await self.fail(email, user, InvalidCredentials(), sign_in="password")
        await self._release(email, PASSWORD)
        return user

    async def reauthenticate(self, user: User, password: str) -> None:
        """Checks the current password before a sensitive change; wrong ones count towards the
        lockout, or a stolen session could be used to guess the password."""
        await self._reserve(user.email, PASSWORD)
        await self.uow.commit()
        if not await self.hasher.verify(password, user.password_hash):
            await self.fail(user.email, user, InvalidPassword())
        await self._release(user.email, PASSWORD)

    async def check_second_factor(
        self,
        user: User,
        verify: Callable[[], Awaitable[bool]],
        error: AppError,
        *,
        sign_in: str | None = None,
    ) -> None:
        """Runs a second-factor check as one counted attempt: `error` (or AccountLocked) when
        `verify` says no. `sign_in`: the check is a sign-in's (its method), audited as one."""
        await self._reserve(user.email, SECOND_FACTOR, sign_in=sign_in)
        await self.uow.commit()
        if not await verify():
            await self.fail(user.email, user, error, factor=SECOND_FACTOR, sign_in=sign_in)
        await self._release(user.email, SECOND_FACTOR)

    async def fail(
        self,
        email: str,
        user: User | None,
        error: AppError,
        *,
        factor: str = PASSWORD,
        sign_in: str | None = None,
    ) -> NoReturn:
        """Settles a failed attempt (password or second factor) and raises `error`, or
        AccountLocked when the run's attempts are used up. A sign-in's failure (`sign_in`: its
        method) is audited; the error commits the transaction, so the event stays."""
        self.metrics.credential_checks.labels(factor, "failed").inc()
        now = utcnow()
        key = self._key(email)
        threshold = self.settings.lockout_max_attempts
        extra: dict[str, object] = {"event": "login_failed"}
        if user is not None:
            extra["target_user_id"] = str(user.id)
        security_log.warning("authentication failed", extra=extra)
        lock = timedelta(minutes=self.settings.lockout_minutes)
        if await self.attempts.lock(key, until=now + lock, threshold=threshold, now=now):
            security_log.warning("sign-in locked", extra={**extra, "event": "login_lockout"})
            if user is not None:
                self.notifier.account_locked(user)
        retry_after = _seconds_locked(await self.attempts.get_by_key(key), now)
        if sign_in is not None:
            await audit.record(
                self.uow,
                actions.SIGN_IN,
                target=audit.Target("user", user.id) if user is not None else None,
                outcome=actions.LOCKED if retry_after is not None else actions.FAILED,
                details={
                    "method": sign_in,
                    "reason": "account_locked" if retry_after is not None else error.code,
                    **({} if user is not None else {"account": "unknown"}),
                },
            )
        if retry_after is not None:
            raise AccountLocked(retry_after)
        raise error

    async def succeed(self, email: str) -> None:
        """A complete success ends the run of failures, unless a concurrent failure locked the
        email meanwhile: then this request is refused like every other."""
        now = utcnow()
        if not await self.attempts.clear_unless_locked(self._key(email), now):
            await self._refuse_locked(self._key(email), now, factor=None)

    async def lift_lock(self, email: str) -> None:
        """Ends the run and any lock: a password reset proved control of the mailbox."""
        await self.attempts.clear(self._key(email))

    async def _reserve(self, email: str, factor: str, *, sign_in: str | None = None) -> None:
        """Takes one attempt before the check runs, so that a burst of concurrent guesses cannot
        all pass a lock check that none of them has updated yet."""
        now = utcnow()
        key = self._key(email)
        number = await self.attempts.reserve(
            key, threshold=self.settings.lockout_max_attempts, now=now
        )
        if number is None:
            await self._refuse_locked(key, now, factor=factor, sign_in=sign_in)

    async def _release(self, email: str, factor: str) -> None:
        """A check passed: its attempt is given back, unless the email got locked meanwhile.
        Committed at once, as the reservation was: a later refusal in the same request (a reused
        new password, say) rolls back its own changes, not this."""
        self.metrics.credential_checks.labels(factor, "passed").inc()
        now = utcnow()
        key = self._key(email)
        await self.attempts.release(key)
        await self.uow.commit()
        if _seconds_locked(await self.attempts.get_by_key(key), now) is not None:
            await self._refuse_locked(key, now, factor=None)

    async def _refuse_locked(
        self, key: str, now: datetime, *, factor: str | None, sign_in: str | None = None
    ) -> NoReturn:
        if factor is not None:
            self.metrics.credential_checks.labels(factor, "refused").inc()
        security_log.warning("sign-in refused: locked", extra={"event": "login_locked"})
        if sign_in is not None:
            await audit.record(
                self.uow,
                actions.SIGN_IN,
                outcome=actions.LOCKED,
                details={"method": sign_in, "reason": "account_locked"},
            )
        retry_after = _seconds_locked(await self.attempts.get_by_key(key), now)
        # Not locked yet, but every attempt of the run is taken by checks still running: one
        # of them will lock it.
        raise AccountLocked(retry_after or self.settings.lockout_minutes * 60)


def _seconds_locked(attempt: LoginAttempt | None, now: datetime) -> int | None:
    if attempt is None or attempt.locked_until is None or attempt.locked_until <= now:
        return None
    return max(1, math.ceil((attempt.locked_until - now).total_seconds()))
