from fastapi import APIRouter, Response, status

from app.auth.dependencies import CurrentUser
from app.core.errors import Unauthorized, error_responses
from app.prompts.dependencies import OwnedPrompt, PromptServiceDep
from app.prompts.errors import CommandTaken, PromptNotFound
from app.prompts.schemas import PromptCreate, PromptRead, PromptUpdate

router = APIRouter(prefix="/api/prompts", tags=["prompts"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Save a prompt",
    responses=error_responses(Unauthorized, CommandTaken),
)
async def create_prompt(
    body: PromptCreate, user: CurrentUser, service: PromptServiceDep
) -> PromptRead:
    """A prompt with a `/command` of its own (409 if another of yours has it)."""
    return PromptRead.model_validate(await service.create(user, body))


@router.get("", summary="List my prompts", responses=error_responses(Unauthorized))
async def list_prompts(user: CurrentUser, service: PromptServiceDep) -> list[PromptRead]:
    """Your prompts by command, each with the variables its content asks for."""
    return [PromptRead.model_validate(prompt) for prompt in await service.list_prompts(user)]


@router.get(
    "/{prompt_id}",
    summary="Get a prompt",
    responses=error_responses(Unauthorized, PromptNotFound),
)
async def get_prompt(prompt: OwnedPrompt) -> PromptRead:
    """One prompt with its variables."""
    return PromptRead.model_validate(prompt)


@router.patch(
    "/{prompt_id}",
    summary="Change a prompt",
    responses=error_responses(Unauthorized, PromptNotFound, CommandTaken),
)
async def update_prompt(
    prompt: OwnedPrompt, body: PromptUpdate, service: PromptServiceDep
) -> PromptRead:
    """Changes only the fields sent."""
    return PromptRead.model_validate(await service.update(prompt, body))


@router.delete(
    "/{prompt_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a prompt",
    responses=error_responses(Unauthorized, PromptNotFound),
)
async def delete_prompt(prompt: OwnedPrompt, service: PromptServiceDep) -> Response:
    """Deletes the prompt for good."""
    await service.delete(prompt)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
