"""Groups: their administration, membership, what they give members, and restricted models.

Each change tells every worker's GroupCache what to drop (access.py), once it commits.
"""

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError

from app.accounts.errors import UserNotFound
from app.audit import actions
from app.audit.recorder import Target, record
from app.core.db import utcnow
from app.core.errors import Forbidden
from app.core.uow import UnitOfWork
from app.groups.access import EVERYONE, RESTRICTED, GroupCache
from app.groups.errors import (
    GroupNameTaken,
    GroupNotFound,
    UnknownGroupModels,
    UnknownUsers,
)
from app.groups.models import Group
from app.groups.repository import GroupRepository
from app.groups.schemas import (
    GroupCreate,
    GroupDetail,
    GroupMemberRead,
    GroupRead,
    GroupUpdate,
    ModelAccessRead,
    MyGroupRead,
)
from app.users.models import Role, User

MAX_GROUPS = 1000


@dataclass(kw_only=True)
class GroupService:
    uow: UnitOfWork
    cache: GroupCache

    def __post_init__(self) -> None:
        self.groups = self.uow.get(GroupRepository)

    # --- reading --------------------------------------------------------------------------

    async def _get(self, group_id: uuid.UUID) -> Group:
        group = await self.groups.get(group_id)
        if group is None:
            raise GroupNotFound()
        return group

    async def _read(self, group: Group, member_count: int | None = None) -> GroupRead:
        if member_count is None:
            member_count = await self.groups.member_count(group.id)
        return GroupRead(
            id=group.id,
            name=group.name,
            description=group.description,
            models=list(group.models),
            daily_token_quota=group.daily_token_quota,
            admins=await self.groups.admin_ids(group.id),
            member_count=member_count,
            created_at=group.created_at,
            updated_at=group.updated_at,
        )

    async def detail(self, group_id: uuid.UUID) -> GroupDetail:
        """A group with its members."""
        group = await self._get(group_id)
        members = await self.groups.members(group.id)
        read = await self._read(group, len(members))
        return GroupDetail(
            **read.model_dump(),
            members=[
                GroupMemberRead(id=m.id, email=m.email, display_name=m.display_name)
                for m in members
            ],
        )

    async def list_groups(self) -> list[GroupRead]:
        """Every group by name, with its member count."""
        return [await self._read(g, n) for g, n in await self.groups.listing(limit=MAX_GROUPS)]

    async def mine(self, user: User) -> list[MyGroupRead]:
        """The groups the user is a member or an administrator of."""
        found: dict[uuid.UUID, MyGroupRead] = {}
        for group in await self.groups.memberships(user.id):
            found[group.id] = _mine(group, member=True, admin=False)
        for group in await self.groups.administered(user.id):
            member = group.id in found
            found[group.id] = _mine(group, member=member, admin=True)
        return sorted(found.values(), key=lambda g: g.name)

    # --- administration -------------------------------------------------------------------

    async def _check(
        self,
        *,
        models: Sequence[str] | None,
        admins: Sequence[uuid.UUID] | None,
        known_models: Collection[str],
    ) -> None:
        if models is not None:
            unknown = sorted(set(models) - set(known_models))
            if unknown:
                raise UnknownGroupModels(
                    f"These models are not configured: {', '.join(unknown)}. GET /api/models "
                    "lists them."
                )
        if admins:
            missing = set(admins) - await self.groups.existing_users(admins)
            if missing:
                raise UnknownUsers(
                    f"These ids are not users: {', '.join(sorted(str(m) for m in missing))}."
                )

    async def _save(self, group: Group, *, new: bool) -> None:
        """Adds or flushes the group; GroupNameTaken when the name is another group's."""
        try:
            async with self.uow.savepoint():
                if new:
                    await self.groups.add(group)
                else:
                    await self.uow.flush()
        except IntegrityError:
            raise GroupNameTaken() from None

    async def create(self, data: GroupCreate, *, known_models: Collection[str]) -> GroupDetail:
        """Creates a group; 409 when the name is taken, 422 for unknown models or users."""
        await self._check(models=data.models, admins=data.admins, known_models=known_models)
        if await self.groups.by_name(data.name) is not None:
            raise GroupNameTaken()
        now = utcnow()
        group = Group(
            name=data.name,
            description=data.description,
            models=list(dict.fromkeys(data.models)),
            daily_token_quota=data.daily_token_quota,
            created_at=now,
            updated_at=now,
        )
        await self._save(group, new=True)
        await self.groups.set_admins(group.id, data.admins)
        await record(
            self.uow, actions.GROUP_CREATED, target=_target(group.id), details={"name": group.name}
        )
        return await self.detail(group.id)

    async def update(
        self, group_id: uuid.UUID, data: GroupUpdate, *, known_models: Collection[str]
    ) -> GroupDetail:
        """Changes the fields sent; members' access changes at once on every worker."""
        group = await self._get(group_id)
        sent = data.model_fields_set
        models = data.models if "models" in sent else None
        admins = data.admins if "admins" in sent else None
        await self._check(models=models, admins=admins, known_models=known_models)
        if "name" in sent and data.name is not None and data.name != group.name:
            other = await self.groups.by_name(data.name)
            if other is not None:
                raise GroupNameTaken()
            group.name = data.name
        if "description" in sent:
            group.description = data.description
        if models is not None:
            group.models = list(dict.fromkeys(models))
        if "daily_token_quota" in sent:
            group.daily_token_quota = data.daily_token_quota
        group.updated_at = utcnow()
        await self._save(group, new=False)
        if admins is not None:
            await self.groups.set_admins(group.id, admins)
        self.cache.announce(self.uow, EVERYONE)
        await record(
            self.uow,
            actions.GROUP_CHANGED,
            target=_target(group.id),
            details={"fields": sorted(sent)},
        )
        return await self.detail(group.id)

    async def delete(self, group_id: uuid.UUID) -> None:
        """Deletes the group: its members lose its models, quota and shared collections."""
        group = await self._get(group_id)
        name = group.name
        await self.groups.remove(group_id)
        self.cache.announce(self.uow, EVERYONE)
        await record(
            self.uow, actions.GROUP_DELETED, target=_target(group_id), details={"name": name}
        )

    # --- membership -----------------------------------------------------------------------

    async def check_manager(self, actor: User, group_id: uuid.UUID) -> None:
        """Administrators manage every group's membership, a group's admins that group's;
        anyone else is refused like any administrator route (403), whether or not the group
        exists. An administrator asking for a group that does not exist gets 404."""
        if actor.role == Role.ADMIN:
            await self._get(group_id)
            return
        if not await self.groups.is_admin_of(group_id, actor.id):
            raise Forbidden("Administrators, and this group's admins, only.")

    async def add_member(self, actor: User, group_id: uuid.UUID, user_id: uuid.UUID) -> GroupDetail:
        """Adds a user to the group (adding a member again changes nothing)."""
        await self.check_manager(actor, group_id)
        if not await self.groups.existing_users([user_id]):
            raise UserNotFound()
        if await self.groups.add_member(group_id, user_id):
            self.cache.announce(self.uow, str(user_id))
            await record(
                self.uow,
                actions.GROUP_MEMBERSHIP_CHANGED,
                target=_target(group_id),
                details={"user_id": str(user_id), "change": "added"},
            )
        return await self.detail(group_id)

    async def remove_member(self, actor: User, group_id: uuid.UUID, user_id: uuid.UUID) -> None:
        """Takes a user out of the group; 404 when they are not a member."""
        await self.check_manager(actor, group_id)
        if not await self.groups.remove_member(group_id, user_id):
            raise UserNotFound("This user is not a member of the group.")
        self.cache.announce(self.uow, str(user_id))
        await record(
            self.uow,
            actions.GROUP_MEMBERSHIP_CHANGED,
            target=_target(group_id),
            details={"user_id": str(user_id), "change": "removed"},
        )

    async def sync_memberships(
        self, user_id: uuid.UUID, group_names: Sequence[str], *, create_missing: bool
    ) -> list[str]:
        """Makes the user a member of exactly the groups named (single sign-on's groups claim):
        joins those that exist (creating the missing ones with `create_missing`, without models
        or quota), leaves every other group. Returns the names of the user's groups after."""
        names = list(dict.fromkeys(n.strip() for n in group_names if n and n.strip()))
        names = [n[:100] for n in names]
        groups = {g.name: g for g in await self.groups.by_names(names)}
        if create_missing:
            for name in names:
                if name in groups:
                    continue
                now = utcnow()
                group = Group(name=name, models=[], created_at=now, updated_at=now)
                try:
                    await self._save(group, new=True)
                except GroupNameTaken:  # created meanwhile by a concurrent sign-in
                    found = await self.groups.by_name(name)
                    if found is None:
                        raise
                    group = found
                groups[name] = group
        wanted = {g.id for g in groups.values()}
        current = await self.groups.member_group_ids(user_id)
        changed = False
        for group_id, change in [(g, "added") for g in wanted - current] + [
            (g, "removed") for g in current - wanted
        ]:
            if change == "added":
                done = await self.groups.add_member(group_id, user_id)
            else:
                done = await self.groups.remove_member(group_id, user_id)
            if done:
                changed = True
                await record(
                    self.uow,
                    actions.GROUP_MEMBERSHIP_CHANGED,
                    target=_target(group_id),
                    details={"user_id": str(user_id), "change": change, "via": "sso"},
                )
        if changed:
            self.cache.announce(self.uow, str(user_id))
        return sorted(g.name for g in groups.values())

    # --- restricted models ----------------------------------------------------------------

    async def model_access(self, names: Sequence[str]) -> list[ModelAccessRead]:
        """Whether each model is restricted, and the groups whose `models` list it."""
        restricted = await self.groups.restricted()
        groups = await self.groups.listing(limit=MAX_GROUPS)
        return [
            ModelAccessRead(
                name=name,
                restricted=name in restricted,
                groups=[g.name for g, _ in groups if name in g.models],
            )
            for name in names
        ]

    async def set_restricted(self, name: str, *, restricted: bool) -> ModelAccessRead:
        """Restricts a (configured) model to the groups listing it, or opens it to everyone."""
        if await self.groups.set_restricted(name, restricted):
            self.cache.announce(self.uow, RESTRICTED)
            await record(
                self.uow,
                actions.MODEL_RESTRICTED,
                target=Target("model", name),
                details={"restricted": restricted},
            )
        return (await self.model_access([name]))[0]


class GroupMembershipSync:
    """Single sign-on's GroupSync (app/auth/sso.py, `runtime.group_sync`): the identity
    provider's groups claim sets the user's groups at each sign-in."""

    def __init__(self, cache: GroupCache) -> None:
        self.cache = cache

    async def sync(
        self, uow: UnitOfWork, user: User, groups: Sequence[str], *, create_missing: bool
    ) -> None:
        await GroupService(uow=uow, cache=self.cache).sync_memberships(
            user.id, groups, create_missing=create_missing
        )


def _target(group_id: uuid.UUID) -> Target:
    return Target("group", group_id)


def _mine(group: Group, *, member: bool, admin: bool) -> MyGroupRead:
    return MyGroupRead(
        id=group.id,
        name=group.name,
        description=group.description,
        models=list(group.models),
        daily_token_quota=group.daily_token_quota,
        member=member,
        admin=admin,
    )
