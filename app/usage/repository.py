import uuid
from datetime import date
from typing import Any, cast

from sqlalchemy import (
    Boolean,
    Integer,
    Select,
    String,
    Table,
    Uuid,
    bindparam,
    case,
    column,
    func,
    select,
    table,
    update,
)

from app.core.repository import Repository
from app.usage.models import UsageRecord
from app.users.models import User

_TOTAL = UsageRecord.prompt_tokens + UsageRecord.completion_tokens
# The API keys' names for reports grouped by key: the table belongs to app/keys, above this
# package, so it is named here by its columns rather than imported.
_API_KEY = table("api_key", column("id", Uuid), column("name", String))


class UsageRepository(Repository[UsageRecord]):
    model = UsageRecord

    async def lock_user(self, user_id: uuid.UUID) -> None:
        """Serializes quota checks of one user across requests and workers (Postgres; SQLite's
        BEGIN IMMEDIATE already serializes every writer)."""
        if self.session.get_bind().dialect.name == "postgresql":
            await self.session.execute(select(User.id).where(User.id == user_id).with_for_update())

    async def used_on(self, user_id: uuid.UUID, day: date) -> int:
        """Tokens used or reserved by the user on that day."""
        used = await self.session.scalar(
            select(func.coalesce(func.sum(_TOTAL), 0)).where(
                UsageRecord.user_id == user_id, UsageRecord.day == day
            )
        )
        return int(used or 0)

    async def used_by_key_on(self, api_key_id: uuid.UUID, day: date) -> int:
        """Tokens used or reserved through the key on that day."""
        used = await self.session.scalar(
            select(func.coalesce(func.sum(_TOTAL), 0)).where(
                UsageRecord.api_key_id == api_key_id, UsageRecord.day == day
            )
        )
        return int(used or 0)

    async def used_by_keys_on(
        self, api_key_ids: list[uuid.UUID], day: date
    ) -> dict[uuid.UUID, int]:
        """Tokens used or reserved through each of the keys on that day."""
        if not api_key_ids:
            return {}
        rows = await self.session.execute(
            select(UsageRecord.api_key_id, func.coalesce(func.sum(_TOTAL), 0))
            .where(UsageRecord.api_key_id.in_(api_key_ids), UsageRecord.day == day)
            .group_by(UsageRecord.api_key_id)
        )
        return {row[0]: int(row[1]) for row in rows if row[0] is not None}

    async def key_names(self, api_key_ids: list[Any]) -> dict[Any, str]:
        ids = [key for key in api_key_ids if key is not None]
        if not ids:
            return {}
        rows = await self.session.execute(
            select(_API_KEY.c.id, _API_KEY.c.name).where(_API_KEY.c.id.in_(ids))
        )
        return {row[0]: row[1] for row in rows}

    async def report(
        self,
        *,
        start: date,
        end: date,
        group_by: str,
        user_id: uuid.UUID | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Settled usage summed in SQL, one row per day, model, user, API key or deployment."""
        key = {
            "day": UsageRecord.day,
            "model": UsageRecord.model,
            "user": UsageRecord.user_id,
            "key": UsageRecord.api_key_id,
            # "<model>/<deployment>" (routing); NULL, the row "none", where none was recorded.
            "deployment": case(
                (UsageRecord.deployment.is_(None), None),
                else_=UsageRecord.model + "/" + UsageRecord.deployment,
            ),
        }[group_by]
        statement: Select[Any] = select(
            key.label("key"),
            func.count().label("requests"),
            func.coalesce(func.sum(UsageRecord.prompt_tokens), 0).label("prompt_tokens"),
            func.coalesce(func.sum(UsageRecord.completion_tokens), 0).label("completion_tokens"),
            func.coalesce(func.sum(case((UsageRecord.estimated, _TOTAL), else_=0)), 0).label(
                "estimated_tokens"
            ),
        ).where(
            UsageRecord.day >= start,
            UsageRecord.day <= end,
            UsageRecord.pending.is_(False),
        )
        if user_id is not None:
            statement = statement.where(UsageRecord.user_id == user_id)
        statement = statement.group_by(key)
        if group_by == "user":
            statement = statement.order_by(func.sum(_TOTAL).desc()).limit(limit or 20)
        else:
            statement = statement.order_by(key)
        rows = (await self.session.execute(statement)).mappings().all()
        return [dict(row) for row in rows]

    async def settle(
        self,
        usage_id: uuid.UUID,
        *,
        prompt_tokens: int,
        completion_tokens: int,
        estimated: bool,
        model: str | None = None,
        deployment: str | None = None,
    ) -> None:
        """Replaces a reservation with what the reply really used; `model` and `deployment`:
        who answered, when routing chose (a fallback model is charged as itself)."""
        await self.session.execute(
            _SETTLE,
            {
                "usage_id": usage_id,
                "new_prompt_tokens": prompt_tokens,
                "new_completion_tokens": completion_tokens,
                "new_estimated": estimated,
                "new_model": model,
                "new_deployment": deployment,
            },
        )

    async def emails(self, user_ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
        if not user_ids:
            return {}
        rows = await self.session.execute(select(User.id, User.email).where(User.id.in_(user_ids)))
        return {row[0]: row[1] for row in rows}


# Built once, on the table (an ORM-enabled UPDATE costs more to run): it ends every reply.
_USAGE_TABLE = cast(Table, UsageRecord.__table__)
_SETTLE = (
    update(_USAGE_TABLE)
    .where(_USAGE_TABLE.c.id == bindparam("usage_id", type_=Uuid))
    .values(
        prompt_tokens=bindparam("new_prompt_tokens", type_=Integer),
        completion_tokens=bindparam("new_completion_tokens", type_=Integer),
        estimated=bindparam("new_estimated", type_=Boolean),
        model=func.coalesce(bindparam("new_model", type_=String), _USAGE_TABLE.c.model),
        deployment=bindparam("new_deployment", type_=String),
        pending=False,
    )
)
