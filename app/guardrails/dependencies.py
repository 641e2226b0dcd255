from typing import Annotated

from fastapi import Depends

from app.core.deps import SessionDep
from app.guardrails.repository import ModerationRepository


async def get_moderation_repository(session: SessionDep) -> ModerationRepository:
    return ModerationRepository(session)


ModerationRepositoryDep = Annotated[ModerationRepository, Depends(get_moderation_repository)]
