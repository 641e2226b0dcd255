"""Dependencies of the usage endpoints."""

from typing import Annotated

from fastapi import Depends

from app.core.deps import SessionDep, SettingsDep
from app.usage.repository import UsageRepository
from app.usage.service import UsageService


async def get_usage_service(session: SessionDep, settings: SettingsDep) -> UsageService:
    return UsageService(usage=UsageRepository(session), settings=settings)


UsageServiceDep = Annotated[UsageService, Depends(get_usage_service)]
