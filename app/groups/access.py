"""What a user's groups give them: the restricted models they may use and their group quota.

`GroupCache` (one per worker, `runtime.groups`) keeps the set of restricted models and each
user's standing (their groups, the models those list, the tightest group quota) with no expiry:
every change publishes an invalidation (app/core/invalidation.py, topic `groups`) that drops the
stale entries on every worker at once; while the invalidation reader is not live, the database
is read instead. `GroupAccess` is one request's view: it computes each user's `ModelPermit`
once, and the model registry applies it wherever a model is listed or resolved
(app/generation/upstream/registry.py), so a restricted model a user may not use answers like
one that does not exist.
"""

import uuid
from dataclasses import dataclass

from app.core.invalidation import Invalidations
from app.core.uow import UnitOfWork
from app.groups.repository import GroupRepository
from app.users.models import Role, User

TOPIC = "groups"
# Values on TOPIC: the set of restricted models changed; every user's standing may have
# changed (a group's models or quota changed, or it was deleted); else a user id.
RESTRICTED = "restricted"
EVERYONE = "*"

# Standings kept per worker at most; past it the cache starts again (a cheap bound).
MAX_STANDINGS = 50_000


@dataclass(frozen=True)
class Standing:
    """A user's groups as model access and quotas see them."""

    group_ids: frozenset[uuid.UUID]
    models: frozenset[str]
    daily_token_quota: int | None


@dataclass(frozen=True)
class ModelPermit:
    """The models a user may not use (restricted to groups they are not in)."""

    hidden: frozenset[str] = frozenset()

    def allows(self, model: str) -> bool:
        return model not in self.hidden


# Administrators, and everyone while no model is restricted.
EVERY_MODEL = ModelPermit()


class GroupCache:
    """The per-worker cache of restricted models and users' standings."""

    def __init__(self, invalidations: Invalidations) -> None:
        self.invalidations = invalidations
        self._restricted: frozenset[str] | None = None
        self._standings: dict[uuid.UUID, Standing] = {}
        # Bumped by every invalidation: a value read before a message came is not cached after.
        self._epoch = 0
        # Database reads (cache misses), for tests and the benchmark.
        self.reads = 0
        invalidations.subscribe(TOPIC, self._drop)
        invalidations.on_reset(self.clear)

    def clear(self) -> None:
        self._epoch += 1
        self._restricted = None
        self._standings.clear()

    def _drop(self, value: str) -> None:
        self._epoch += 1
        if value == RESTRICTED:
            self._restricted = None
        elif value == EVERYONE:
            self._standings.clear()
        else:
            try:
                self._standings.pop(uuid.UUID(value), None)
            except ValueError:
                return

    async def restricted(self, uow: UnitOfWork) -> frozenset[str]:
        live = self.invalidations.live
        if live and self._restricted is not None:
            return self._restricted
        epoch = self._epoch
        self.reads += 1
        found = await uow.get(GroupRepository).restricted()
        if live and self.invalidations.live and epoch == self._epoch:
            self._restricted = found
        return found

    async def standing(self, user_id: uuid.UUID, uow: UnitOfWork) -> Standing:
        live = self.invalidations.live
        cached = self._standings.get(user_id) if live else None
        if cached is not None:
            return cached
        epoch = self._epoch
        self.reads += 1
        groups = await uow.get(GroupRepository).memberships(user_id)
        quotas = [g.daily_token_quota for g in groups if g.daily_token_quota is not None]
        found = Standing(
            group_ids=frozenset(g.id for g in groups),
            models=frozenset(name for g in groups for name in g.models),
            daily_token_quota=min(quotas) if quotas else None,
        )
        if live and self.invalidations.live and epoch == self._epoch:
            if len(self._standings) >= MAX_STANDINGS:
                self._standings.clear()
            self._standings[user_id] = found
        return found

    def announce(self, uow: UnitOfWork, value: str) -> None:
        """Tells every worker, once `uow` commits, that what `value` names changed."""
        uow.after_commit(lambda: self.invalidations.publish_soon(TOPIC, value))

    def access(self, uow: UnitOfWork) -> "GroupAccess":
        """One request's view, reading through `uow` on a miss."""
        return GroupAccess(self, uow)


class GroupAccess:
    """One request's view of groups: each user's permit and quota computed once."""

    def __init__(self, cache: GroupCache, uow: UnitOfWork) -> None:
        self.cache = cache
        self.uow = uow
        self._permits: dict[uuid.UUID, ModelPermit] = {}

    async def permit(self, user: User) -> ModelPermit:
        """The models `user` may not use. Administrators may use every model (they restrict
        them, and must be able to try them); everyone else may use an unrestricted model, and a
        restricted one listed by a group they are a member of."""
        found = self._permits.get(user.id)
        if found is not None:
            return found
        if user.role == Role.ADMIN:
            found = EVERY_MODEL
        else:
            restricted = await self.cache.restricted(self.uow)
            if not restricted:
                found = EVERY_MODEL
            else:
                standing = await self.cache.standing(user.id, self.uow)
                found = ModelPermit(hidden=restricted - standing.models)
        self._permits[user.id] = found
        return found

    async def daily_token_quota(self, user_id: uuid.UUID) -> int | None:
        """The tightest daily token quota of the user's groups (None: no group sets one)."""
        return (await self.cache.standing(user_id, self.uow)).daily_token_quota
