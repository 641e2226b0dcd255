import uuid
from typing import Annotated

from fastapi import Depends

from app.auth.dependencies import CurrentUser
from app.core.deps import UnitOfWorkDep
from app.prompts.models import Prompt
from app.prompts.service import PromptService


async def get_prompt_service(uow: UnitOfWorkDep) -> PromptService:
    return PromptService(uow)


PromptServiceDep = Annotated[PromptService, Depends(get_prompt_service)]


async def get_owned_prompt(
    prompt_id: uuid.UUID, user: CurrentUser, service: PromptServiceDep
) -> Prompt:
    """The prompt in the path if it is the caller's; PromptNotFound (404) otherwise."""
    return await service.get_owned(user, prompt_id)


OwnedPrompt = Annotated[Prompt, Depends(get_owned_prompt)]
