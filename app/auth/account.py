"""Account recovery and upkeep: email verification, forgotten and changed passwords."""

import asyncio
import logging
import uuid
from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy.exc import IntegrityError

from app import audit
from app.audit import actions
from app.auth.errors import EmailTaken, InvalidAccountToken, PasswordReused
from app.auth.guard import CredentialGuard
from app.auth.models import PasswordHistory, TokenPurpose
from app.auth.notifications import Notifier
from app.auth.passwords import check_password_policy
from app.auth.repository import AuthSessionRepository, PasswordHistoryRepository
from app.auth.tokens import AccountTokens
from app.core.config import Settings
from app.core.db import utcnow
from app.core.deps import AccountDeletionHook
from app.core.ratelimit import RateLimiter
from app.core.security import PasswordHasher, keyed_digest
from app.core.uow import UnitOfWork
from app.users.models import User
from app.users.repository import UserRepository

security_log = logging.getLogger("parley.security")


class AccountService:
    def __init__(
        self,
        *,
        uow: UnitOfWork,
        users: UserRepository,
        sessions: AuthSessionRepository,
        history: PasswordHistoryRepository,
        account_tokens: AccountTokens,
        guard: CredentialGuard,
        notifier: Notifier,
        hasher: PasswordHasher,
        limiter: RateLimiter,
        settings: Settings,
        digest_key: bytes,
        revocation_hooks: Sequence[AccountDeletionHook] = (),
    ) -> None:
        self.uow = uow
        # Other credentials of the user (API keys) that a password reset revokes.
        self.revocation_hooks = revocation_hooks
        self.users = users
        self.sessions = sessions
        self.history = history
        self.account_tokens = account_tokens
        self.guard = guard
        self.notifier = notifier
        self.hasher = hasher
        self.limiter = limiter
        self.settings = settings
        self.digest_key = digest_key

    # Email verification

    async def send_verification(self, user: User, *, email: str) -> None:
        """Mails a fresh link proving `email` (the account's, or a pending new one)."""
        token = await self.account_tokens.issue(
            user,
            TokenPurpose.VERIFY_EMAIL,
            email=email,
            ttl=timedelta(hours=self.settings.email_verification_hours),
            now=utcnow(),
        )
        self.notifier.verification(user, email=email, token=token)

    async def verify_email(self, raw_token: str) -> User:
        """Marks the mailed address verified; for a pending email change, switches to it."""
        now = utcnow()
        token = await self.account_tokens.find(raw_token, TokenPurpose.VERIFY_EMAIL, now=now)
        user = await self.users.get(token.user_id)
        if user is None or not user.is_active:
            raise InvalidAccountToken()
        if token.email == user.email:
            await self.account_tokens.use(token, now=now)
            if user.email_verified_at is None:
                user.email_verified_at = now
            security_log.info("email verified", extra={"event": "email_verified"})
            await audit.record(
                self.uow,
                actions.EMAIL_VERIFIED,
                actor=user.id,
                target=audit.Target("user", user.id),
            )
        elif token.email == user.pending_email:
            await self.account_tokens.use(token, now=now)
            old_email = user.email
            user.email = token.email
            user.pending_email = None
            user.email_verified_at = now
            try:
                async with self.uow.savepoint():
                    await self.uow.flush()
            except IntegrityError as exc:
                # Someone registered the address while the link was in the mail.
                raise EmailTaken() from exc
            self.notifier.email_changed(user, old_email=old_email)
            security_log.info("email changed", extra={"event": "email_changed"})
            await audit.record(
                self.uow,
                actions.EMAIL_CHANGED,
                actor=user.id,
                target=audit.Target("user", user.id),
            )
        else:
            # The account's email changed since this link was sent.
            raise InvalidAccountToken()
        await self.uow.flush()
        return user

    async def resend_verification(self, email: str) -> None:
        """Runs after the response: mails a new link if `email` is an unverified account's."""
        user = await self.users.get_by_email(email)
        if user is None or not user.is_active or user.email_verified:
            return
        if not await self._mail_allowed(user.email):
            return
        await self.send_verification(user, email=user.email)

    # Forgotten password

    async def request_password_reset(self, email: str) -> None:
        """Runs after the response: mails a reset link if `email` is an active account's."""
        user = await self.users.get_by_email(email)
        if user is None or not user.is_active:
            return
        if not await self._mail_allowed(user.email):
            return
        token = await self.account_tokens.issue(
            user,
            TokenPurpose.RESET_PASSWORD,
            email=user.email,
            ttl=timedelta(minutes=self.settings.password_reset_minutes),
            now=utcnow(),
        )
        self.notifier.password_reset(user, token=token)
        security_log.info("password reset requested", extra={"event": "password_reset_mailed"})

    async def reset_password(self, raw_token: str, new_password: str) -> None:
        """Sets a new password from a mailed token; every session ends, nobody is signed in.

        MFA stays on: the next sign-in still asks for the second factor.
        """
        now = utcnow()
        token = await self.account_tokens.find(raw_token, TokenPurpose.RESET_PASSWORD, now=now)
        user = await self.users.get(token.user_id)
        if user is None or not user.is_active or token.email != user.email:
            raise InvalidAccountToken()
        # Policy and history first: a refused password leaves the link usable for another try.
        await self._check_new_password(user, new_password)
        await self.account_tokens.use(token, now=now)
        await self._store_password(user, new_password)
        # The link proved control of the mailbox.
        if user.email_verified_at is None:
            user.email_verified_at = now
        await self.sessions.revoke_all(user.id, now=now, reason="password_reset")
        for revoke in self.revocation_hooks:
            await revoke(self.uow, user.id)
        await self.guard.lift_lock(user.email)
        self.notifier.password_changed(user)
        security_log.info("password reset", extra={"event": "password_reset"})
        await audit.record(
            self.uow, actions.PASSWORD_RESET, actor=user.id, target=audit.Target("user", user.id)
        )

    # Changing the password

    async def change_password(
        self, user: User, *, current_password: str, new_password: str, session_id: uuid.UUID
    ) -> None:
        """Needs the current password; ends every other session."""
        await self.guard.reauthenticate(user, current_password)
        await self._check_new_password(user, new_password)
        await self._store_password(user, new_password)
        await self.sessions.revoke_all(
            user.id,
            now=utcnow(),
            reason="password_changed",
            keep=session_id,
        )
        await self.guard.succeed(user.email)
        self.notifier.password_changed(user)
        security_log.info("password changed", extra={"event": "password_changed"})
        await audit.record(
            self.uow, actions.PASSWORD_CHANGED, actor=user.id, target=audit.Target("user", user.id)
        )

    async def _check_new_password(self, user: User, password: str) -> None:
        await check_password_policy(
            password,
            email=user.email,
            display_name=user.display_name,
            min_score=self.settings.password_min_score,
        )
        depth = self.settings.password_history
        if depth <= 0:
            return
        previous = [user.password_hash, *await self.history.recent_hashes(user.id, depth - 1)]
        # bcrypt releases the GIL: the checks run side by side in worker threads.
        matches = await asyncio.gather(*(self.hasher.verify(password, h) for h in previous))
        if any(matches):
            raise PasswordReused()

    async def _store_password(self, user: User, password: str) -> None:
        depth = self.settings.password_history
        if depth > 1:
            await self.history.add(
                PasswordHistory(user_id=user.id, password_hash=user.password_hash)
            )
        await self.history.prune(user.id, keep=max(depth - 1, 0))
        user.password_hash = await self.hasher.hash(password)
        await self.uow.flush()

    async def _mail_allowed(self, email: str) -> bool:
        """Caps security mails per address, so nobody can flood an inbox from many IPs.
        Over the cap the request is still answered 202 and simply sends nothing."""
        key = "mail:" + keyed_digest(self.digest_key, "mail:" + email)
        if await self.limiter.allow("mail_per_address", key):
            return True
        security_log.warning("mail cap reached", extra={"event": "mail_capped"})
        return False
