from typing import Annotated

from fastapi import Depends

from app.core.deps import UnitOfWorkDep
from app.guardrails.repository import ModerationRepository


async def get_moderation_repository(uow: UnitOfWorkDep) -> ModerationRepository:
    return uow.get(ModerationRepository)


ModerationRepositoryDep = Annotated[ModerationRepository, Depends(get_moderation_repository)]
