"""Dependencies of the groups endpoints, and how other domains reach the groups cache."""

from typing import Annotated, Protocol

from fastapi import Depends
from starlette.requests import HTTPConnection

from app.core.deps import CoreRuntime, UnitOfWorkDep
from app.core.uow import UnitOfWork
from app.groups.access import GroupAccess, GroupCache
from app.groups.service import GroupService


class GroupsRuntime(CoreRuntime, Protocol):
    """What groups use of the app's runtime (app/runtime.py): its one GroupCache."""

    groups: GroupCache


class ModelCatalogue(Protocol):
    """The configured models (app.state.generation, the generation parts)."""

    def model_names(self) -> frozenset[str]: ...


async def get_group_cache(connection: HTTPConnection) -> GroupCache:
    runtime: GroupsRuntime = connection.app.state.runtime
    return runtime.groups


GroupCacheDep = Annotated[GroupCache, Depends(get_group_cache)]


def build_group_service(uow: UnitOfWork, cache: GroupCache) -> GroupService:
    return GroupService(uow=uow, cache=cache)


async def get_group_service(uow: UnitOfWorkDep, cache: GroupCacheDep) -> GroupService:
    return build_group_service(uow, cache)


GroupServiceDep = Annotated[GroupService, Depends(get_group_service)]


async def get_group_access(uow: UnitOfWorkDep, cache: GroupCacheDep) -> GroupAccess:
    """The request's view of groups (model permits, group quotas)."""
    return cache.access(uow)


GroupAccessDep = Annotated[GroupAccess, Depends(get_group_access)]


async def get_known_models(connection: HTTPConnection) -> frozenset[str]:
    """The names a group's `models` may list: every configured model."""
    catalogue: ModelCatalogue | None = getattr(connection.app.state, "generation", None)
    return catalogue.model_names() if catalogue is not None else frozenset()


KnownModels = Annotated[frozenset[str], Depends(get_known_models)]
