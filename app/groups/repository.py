"""Every SQL statement of groups, their members and admins, and restricted models."""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from app.core.db import utcnow
from app.core.repository import Repository
from app.groups.models import Group, GroupAdmin, GroupMember, RestrictedModel
from app.users.models import User


@dataclass(frozen=True)
class MemberRow:
    id: uuid.UUID
    email: str
    display_name: str


class GroupRepository(Repository[Group]):
    model = Group

    def _insert(self, table: type[Any]) -> Any:
        """INSERT with ON CONFLICT, in the database's dialect."""
        dialect = self.session.get_bind().dialect.name
        return (postgres_insert if dialect == "postgresql" else sqlite_insert)(table)

    # --- groups ---------------------------------------------------------------------------

    async def by_name(self, name: str) -> Group | None:
        return await self.session.scalar(select(Group).where(Group.name == name))

    async def by_names(self, names: Sequence[str]) -> list[Group]:
        if not names:
            return []
        return list(await self.session.scalars(select(Group).where(Group.name.in_(list(names)))))

    async def listing(self, *, limit: int) -> list[tuple[Group, int]]:
        """Every group by name, with its member count."""
        members = (
            select(GroupMember.group_id, func.count().label("n"))
            .group_by(GroupMember.group_id)
            .subquery()
        )
        rows = await self.session.execute(
            select(Group, func.coalesce(members.c.n, 0))
            .outerjoin(members, members.c.group_id == Group.id)
            .order_by(Group.name, Group.id)
            .limit(limit)
        )
        return [(row[0], int(row[1])) for row in rows]

    async def existing(self, group_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        if not group_ids:
            return set()
        rows = await self.session.scalars(select(Group.id).where(Group.id.in_(list(group_ids))))
        return set(rows)

    async def remove(self, group_id: uuid.UUID) -> None:
        await self.session.execute(delete(Group).where(Group.id == group_id))

    # --- members and admins --------------------------------------------------------------

    async def members(self, group_id: uuid.UUID) -> list[MemberRow]:
        rows = await self.session.execute(
            select(User.id, User.email, User.display_name)
            .join(GroupMember, GroupMember.user_id == User.id)
            .where(GroupMember.group_id == group_id)
            .order_by(User.email)
        )
        return [MemberRow(row[0], row[1], row[2]) for row in rows]

    async def member_count(self, group_id: uuid.UUID) -> int:
        count = await self.session.scalar(
            select(func.count()).select_from(GroupMember).where(GroupMember.group_id == group_id)
        )
        return int(count or 0)

    async def admin_ids(self, group_id: uuid.UUID) -> list[uuid.UUID]:
        rows = await self.session.scalars(
            select(GroupAdmin.user_id)
            .where(GroupAdmin.group_id == group_id)
            .order_by(GroupAdmin.user_id)
        )
        return list(rows)

    async def set_admins(self, group_id: uuid.UUID, user_ids: Sequence[uuid.UUID]) -> None:
        await self.session.execute(delete(GroupAdmin).where(GroupAdmin.group_id == group_id))
        if user_ids:
            await self.session.execute(
                self._insert(GroupAdmin),
                [{"group_id": group_id, "user_id": user_id} for user_id in set(user_ids)],
            )

    async def is_admin_of(self, group_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        found = await self.session.scalar(
            select(GroupAdmin.user_id).where(
                GroupAdmin.group_id == group_id, GroupAdmin.user_id == user_id
            )
        )
        return found is not None

    async def add_member(self, group_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        """Adds the user; False when they were a member already (a concurrent add included)."""
        result = await self.session.execute(
            self._insert(GroupMember)
            .values(group_id=group_id, user_id=user_id, added_at=utcnow())
            .on_conflict_do_nothing(index_elements=["group_id", "user_id"])
            .returning(GroupMember.user_id)
        )
        return result.first() is not None

    async def remove_member(self, group_id: uuid.UUID, user_id: uuid.UUID) -> bool:
        result = await self.session.execute(
            delete(GroupMember)
            .where(GroupMember.group_id == group_id, GroupMember.user_id == user_id)
            .returning(GroupMember.user_id)
        )
        return result.first() is not None

    async def existing_users(self, user_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
        if not user_ids:
            return set()
        rows = await self.session.scalars(select(User.id).where(User.id.in_(list(user_ids))))
        return set(rows)

    # --- what a user's groups give them ---------------------------------------------------

    async def memberships(self, user_id: uuid.UUID) -> list[Group]:
        """The groups the user is a member of."""
        rows = await self.session.scalars(
            select(Group)
            .join(GroupMember, GroupMember.group_id == Group.id)
            .where(GroupMember.user_id == user_id)
            .order_by(Group.name)
        )
        return list(rows)

    async def administered(self, user_id: uuid.UUID) -> list[Group]:
        """The groups the user administers."""
        rows = await self.session.scalars(
            select(Group)
            .join(GroupAdmin, GroupAdmin.group_id == Group.id)
            .where(GroupAdmin.user_id == user_id)
            .order_by(Group.name)
        )
        return list(rows)

    async def member_group_ids(self, user_id: uuid.UUID) -> set[uuid.UUID]:
        rows = await self.session.scalars(
            select(GroupMember.group_id).where(GroupMember.user_id == user_id)
        )
        return set(rows)

    # --- restricted models ----------------------------------------------------------------

    async def restricted(self) -> frozenset[str]:
        return frozenset(await self.session.scalars(select(RestrictedModel.name)))

    async def set_restricted(self, name: str, restricted: bool) -> bool:
        """Restricts or opens the model; whether anything changed."""
        if restricted:
            result = await self.session.execute(
                self._insert(RestrictedModel)
                .values(name=name, restricted_at=utcnow())
                .on_conflict_do_nothing(index_elements=["name"])
                .returning(RestrictedModel.name)
            )
        else:
            result = await self.session.execute(
                delete(RestrictedModel)
                .where(RestrictedModel.name == name)
                .returning(RestrictedModel.name)
            )
        return result.first() is not None
