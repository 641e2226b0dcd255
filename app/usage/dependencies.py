"""Dependencies of the usage endpoints."""

from typing import Annotated

from fastapi import Depends

from app.core.deps import SettingsDep, UnitOfWorkDep
from app.groups.dependencies import GroupCacheDep
from app.usage.repository import UsageRepository
from app.usage.service import UsageService


async def get_usage_service(
    uow: UnitOfWorkDep, settings: SettingsDep, groups: GroupCacheDep
) -> UsageService:
    return UsageService(
        usage=uow.get(UsageRepository), settings=settings, groups=groups.access(uow)
    )


UsageServiceDep = Annotated[UsageService, Depends(get_usage_service)]
