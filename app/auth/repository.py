import uuid
from datetime import datetime

from sqlalchemy import select, update

from app.auth.models import AuthSession, RefreshToken
from app.core.repository import Repository
from app.users.models import User


class UserRepository(Repository[User]):
    model = User

    async def get_by_email(self, email: str) -> User | None:
        return await self.session.scalar(select(User).where(User.email == email))


class AuthSessionRepository(Repository[AuthSession]):
    model = AuthSession

    async def get_with_user(self, session_id: uuid.UUID) -> tuple[AuthSession, User] | None:
        row = (
            await self.session.execute(
                select(AuthSession, User)
                .join(User, User.id == AuthSession.user_id)
                .where(AuthSession.id == session_id)
            )
        ).first()
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
