import uuid
from collections.abc import Collection
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Uuid, and_, bindparam, case, delete, func, null, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from app.auth.models import (
    AccountToken,
    AuthSession,
    LoginAttempt,
    MfaRecoveryCode,
    PasswordHistory,
    RefreshToken,
    UserIdentity,
)
from app.core.repository import Repository
from app.users.models import User


class SessionStanding(NamedTuple):
    session_id: uuid.UUID
    revoked_at: datetime | None
    expires_at: datetime
    user_active: bool


class AuthSessionRepository(Repository[AuthSession]):
    model = AuthSession

    async def get_with_user(self, session_id: uuid.UUID) -> tuple[AuthSession, User] | None:
        """Every authenticated request's first query, so it is built once (see below)."""
        row = (await self.session.execute(_SESSION_WITH_USER, {"session_id": session_id})).first()
        return (row[0], row[1]) if row else None

    async def list_active(self, user_id: uuid.UUID, now: datetime) -> list[AuthSession]:
        result = await self.session.scalars(
            select(AuthSession)
            .where(
                AuthSession.user_id == user_id,
                AuthSession.revoked_at.is_(None),
                AuthSession.expires_at > now,
            )
            .order_by(AuthSession.last_used_at.desc())
        )
        return list(result)

    async def standing(self, session_ids: Collection[uuid.UUID]) -> list[SessionStanding]:
        """Where each of these sessions stands, in one query (sessions gone have no row)."""
        rows = await self.session.execute(
            select(AuthSession.id, AuthSession.revoked_at, AuthSession.expires_at, User.is_active)
            .join(User, User.id == AuthSession.user_id)
            .where(AuthSession.id.in_(session_ids))
        )
        return [SessionStanding(*row) for row in rows]

    async def revoke(self, session_id: uuid.UUID, *, now: datetime, reason: str) -> None:
        await self.session.execute(
            update(AuthSession)
            .where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
            .values(revoked_at=now, revoked_reason=reason)
        )

    async def revoke_all(
        self,
        user_id: uuid.UUID,
        *,
        now: datetime,
        reason: str,
        keep: uuid.UUID | None = None,
    ) -> int:
        statement = (
            update(AuthSession)
            .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
            .values(revoked_at=now, revoked_reason=reason)
        )
        if keep is not None:
            statement = statement.where(AuthSession.id != keep)
        result = await self.session.execute(statement)
        return int(getattr(result, "rowcount", 0) or 0)

    async def touch(self, session_id: uuid.UUID, now: datetime) -> None:
        await self.session.execute(
            update(AuthSession).where(AuthSession.id == session_id).values(last_used_at=now)
        )


class RefreshTokenRepository(Repository[RefreshToken]):
    model = RefreshToken

    async def get_by_hash(self, token_hash: str) -> RefreshToken | None:
        return await self.session.scalar(
            select(RefreshToken).where(RefreshToken.token_hash == token_hash)
        )

    async def claim(self, token_id: uuid.UUID, now: datetime) -> bool:
        """Marks the token used; False when another request used it first (a race or a replay)."""
        result = await self.session.execute(
            update(RefreshToken)
            .where(RefreshToken.id == token_id, RefreshToken.used_at.is_(None))
            .values(used_at=now)
        )
        return bool(getattr(result, "rowcount", 0))


class AccountTokenRepository(Repository[AccountToken]):
    model = AccountToken

    async def get_by_hash(self, token_hash: str, purpose: str) -> AccountToken | None:
        return await self.session.scalar(
            select(AccountToken).where(
                AccountToken.token_hash == token_hash, AccountToken.purpose == purpose
            )
        )

    async def claim(self, token_id: uuid.UUID, now: datetime) -> bool:
        """Marks the token used; False when another request used it first."""
        result = await self.session.execute(
            update(AccountToken)
            .where(AccountToken.id == token_id, AccountToken.used_at.is_(None))
            .values(used_at=now)
        )
        return bool(getattr(result, "rowcount", 0))

    async def retire_all(self, user_id: uuid.UUID, purpose: str, now: datetime) -> None:
        """Ends every unused token of this purpose: only the newest link works."""
        await self.session.execute(
            update(AccountToken)
            .where(
                AccountToken.user_id == user_id,
                AccountToken.purpose == purpose,
                AccountToken.used_at.is_(None),
            )
            .values(used_at=now)
        )


class LoginAttemptRepository(Repository[LoginAttempt]):
    model = LoginAttempt

    async def get_by_key(self, key: str) -> LoginAttempt | None:
        return await self.session.scalar(select(LoginAttempt).where(LoginAttempt.key == key))

    async def reserve(self, key: str, *, threshold: int, now: datetime) -> int | None:
        """Takes one of the `threshold` attempts of the current run before its check runs, and
        returns its number (1, 2, ...); None when the email is locked or every attempt of the run
        is taken. One atomic upsert on both backends, so concurrent requests never share a number
        and at most `threshold` checks run per lock window, whatever the concurrency. An expired
        lock starts a fresh run.
        """
        dialect = self.session.get_bind().dialect.name
        insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
        expired = and_(LoginAttempt.locked_until.is_not(None), LoginAttempt.locked_until <= now)
        statement = (
            insert(LoginAttempt)
            .values(id=uuid.uuid4(), key=key, failed_count=1, updated_at=now)
            .on_conflict_do_update(
                index_elements=[LoginAttempt.key],
                set_={
                    "failed_count": case((expired, 1), else_=LoginAttempt.failed_count + 1),
                    "locked_until": case((expired, null()), else_=LoginAttempt.locked_until),
                    "updated_at": now,
                },
                where=or_(
                    expired,
                    and_(
                        LoginAttempt.locked_until.is_(None),
                        LoginAttempt.failed_count < threshold,
                    ),
                ),
            )
            .returning(LoginAttempt.failed_count)
        )
        number = (await self.session.execute(statement)).scalar_one_or_none()
        return None if number is None else int(number)

    async def release(self, key: str) -> None:
        """Gives back an attempt whose check passed but is not the last step (the password of an
        MFA account): the run of failures goes on, unchanged by it."""
        await self.session.execute(
            update(LoginAttempt)
            .where(
                LoginAttempt.key == key,
                LoginAttempt.locked_until.is_(None),
                LoginAttempt.failed_count > 0,
            )
            .values(failed_count=LoginAttempt.failed_count - 1)
        )

    async def lock(self, key: str, *, until: datetime, threshold: int, now: datetime) -> bool:
        """Locks once the run's attempts are used up. True for the one request that locked it
        (so the owner gets one mail, not several)."""
        result = await self.session.execute(
            update(LoginAttempt)
            .where(
                LoginAttempt.key == key,
                LoginAttempt.failed_count >= threshold,
                or_(LoginAttempt.locked_until.is_(None), LoginAttempt.locked_until <= now),
            )
            .values(locked_until=until, updated_at=now)
        )
        return bool(getattr(result, "rowcount", 0))

    async def clear_unless_locked(self, key: str, now: datetime) -> bool:
        """Ends the run after a complete success; False (and nothing changed) when a concurrent
        failure locked the email in the meantime."""
        result = await self.session.execute(
            delete(LoginAttempt).where(
                LoginAttempt.key == key,
                or_(LoginAttempt.locked_until.is_(None), LoginAttempt.locked_until <= now),
            )
        )
        if getattr(result, "rowcount", 0):
            return True
        return await self.get_by_key(key) is None

    async def clear(self, key: str) -> None:
        await self.session.execute(delete(LoginAttempt).where(LoginAttempt.key == key))


class PasswordHistoryRepository(Repository[PasswordHistory]):
    model = PasswordHistory

    async def recent_hashes(self, user_id: uuid.UUID, limit: int) -> list[str]:
        if limit <= 0:
            return []
        result = await self.session.scalars(
            select(PasswordHistory.password_hash)
            .where(PasswordHistory.user_id == user_id)
            .order_by(PasswordHistory.created_at.desc(), PasswordHistory.id)
            .limit(limit)
        )
        return list(result)

    async def prune(self, user_id: uuid.UUID, keep: int) -> None:
        """Keeps the newest `keep` entries: older hashes are of no use and only a liability."""
        newest = (
            select(PasswordHistory.id)
            .where(PasswordHistory.user_id == user_id)
            .order_by(PasswordHistory.created_at.desc(), PasswordHistory.id)
            .limit(keep)
        )
        await self.session.execute(
            delete(PasswordHistory).where(
                PasswordHistory.user_id == user_id,
                PasswordHistory.id.not_in(newest.scalar_subquery()),
            )
        )


class MfaRecoveryCodeRepository(Repository[MfaRecoveryCode]):
    model = MfaRecoveryCode

    async def replace_all(self, user_id: uuid.UUID, code_hashes: list[str], now: datetime) -> None:
        await self.delete_all(user_id)
        self.session.add_all(
            MfaRecoveryCode(user_id=user_id, code_hash=code_hash, created_at=now)
            for code_hash in code_hashes
        )
        await self.session.flush()

    async def claim(self, user_id: uuid.UUID, code_hash: str, now: datetime) -> bool:
        """Uses the code once: a conditional UPDATE, so a race cannot spend it twice."""
        result = await self.session.execute(
            update(MfaRecoveryCode)
            .where(
                MfaRecoveryCode.user_id == user_id,
                MfaRecoveryCode.code_hash == code_hash,
                MfaRecoveryCode.used_at.is_(None),
            )
            .values(used_at=now)
        )
        return bool(getattr(result, "rowcount", 0))

    async def count_unused(self, user_id: uuid.UUID) -> int:
        return int(
            await self.session.scalar(
                select(func.count())
                .select_from(MfaRecoveryCode)
                .where(MfaRecoveryCode.user_id == user_id, MfaRecoveryCode.used_at.is_(None))
            )
            or 0
        )

    async def delete_all(self, user_id: uuid.UUID) -> None:
        await self.session.execute(
            delete(MfaRecoveryCode).where(MfaRecoveryCode.user_id == user_id)
        )


# Built once with bind parameters: constructing a statement costs SQLAlchemy about as much as
# running a simple one, and these run on every request.
_SESSION_WITH_USER = (
    select(AuthSession, User)
    .join(User, User.id == AuthSession.user_id)
    .where(AuthSession.id == bindparam("session_id", type_=Uuid))
)


class UserIdentityRepository(Repository[UserIdentity]):
    model = UserIdentity

    async def find(self, issuer: str, subject: str) -> UserIdentity | None:
        return await self.session.scalar(
            select(UserIdentity).where(
                UserIdentity.issuer == issuer, UserIdentity.subject == subject
            )
        )

    async def of_user(self, user_id: uuid.UUID) -> list[UserIdentity]:
        rows = await self.session.scalars(
            select(UserIdentity)
            .where(UserIdentity.user_id == user_id)
            .order_by(UserIdentity.created_at)
        )
        return list(rows)
