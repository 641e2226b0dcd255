import uuid
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select, update

from app.core.repository import Repository
from app.keys.models import ApiKey
from app.users.models import User


class ApiKeyRepository(Repository[ApiKey]):
    model = ApiKey

    async def by_hash(self, key_hash: str) -> ApiKey | None:
        return await self.session.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash))

    async def owned(self, user_id: uuid.UUID, key_id: uuid.UUID) -> ApiKey | None:
        """The user's live (unrevoked) key; another user's key is not found."""
        return await self.session.scalar(
            select(ApiKey).where(
                ApiKey.id == key_id, ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None)
            )
        )

    async def live_of(self, user_id: uuid.UUID) -> list[ApiKey]:
        rows = await self.session.scalars(
            select(ApiKey)
            .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
            .order_by(ApiKey.created_at.desc(), ApiKey.id)
        )
        return list(rows)

    async def count_live(self, user_id: uuid.UUID) -> int:
        count = await self.session.scalar(
            select(func.count())
            .select_from(ApiKey)
            .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
        )
        return int(count or 0)

    async def everyone(
        self, *, user_id: uuid.UUID | None, include_revoked: bool, limit: int
    ) -> list[tuple[ApiKey, str]]:
        """Keys with their owners' emails, newest first (the admin list)."""
        statement = select(ApiKey, User.email).join(User, User.id == ApiKey.user_id)
        if user_id is not None:
            statement = statement.where(ApiKey.user_id == user_id)
        if not include_revoked:
            statement = statement.where(ApiKey.revoked_at.is_(None))
        rows = await self.session.execute(
            statement.order_by(ApiKey.created_at.desc(), ApiKey.id).limit(limit)
        )
        return [(row[0], row[1]) for row in rows]

    async def revoke_all(self, user_id: uuid.UUID, *, now: datetime) -> list[uuid.UUID]:
        """Revokes every live key of the user; the ids revoked."""
        rows = await self.session.scalars(
            update(ApiKey)
            .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
            .values(revoked_at=now)
            .returning(ApiKey.id)
        )
        return list(rows)

    async def touch(self, key_id: uuid.UUID, *, now: datetime, interval: timedelta) -> None:
        """Sets last_used_at, unless another request (of any worker) did within `interval`."""
        await self.session.execute(
            update(ApiKey)
            .where(
                ApiKey.id == key_id,
                or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < now - interval),
            )
            .values(last_used_at=now)
            .execution_options(synchronize_session=False)
        )
