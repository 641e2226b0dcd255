import uuid
from collections.abc import Sequence

from sqlalchemy.exc import IntegrityError

from app.core.db import utcnow
from app.core.uow import UnitOfWork
from app.prompts.errors import CommandTaken, PromptNotFound
from app.prompts.models import Prompt
from app.prompts.repository import PromptRepository
from app.prompts.schemas import PromptCreate, PromptUpdate
from app.users.models import User


class PromptService:
    """The prompt library: a user's saved prompts, each with a `/command` of its own."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.prompts = uow.get(PromptRepository)

    async def _flush(self) -> None:
        # The unique constraint decides when two requests take one command at once.
        try:
            async with self.uow.savepoint():
                await self.uow.flush()
        except IntegrityError as exc:
            raise CommandTaken() from exc

    async def create(self, user: User, data: PromptCreate) -> Prompt:
        """A prompt; CommandTaken (409) if another of the user's has its command."""
        if await self.prompts.command_taken(user.id, data.command):
            raise CommandTaken()
        now = utcnow()
        prompt = Prompt(
            user_id=user.id,
            name=data.name,
            command=data.command,
            content=data.content,
            created_at=now,
            updated_at=now,
        )
        self.prompts.stage(prompt)
        await self._flush()
        return prompt

    async def get_owned(self, user: User, prompt_id: uuid.UUID) -> Prompt:
        """The user's prompt, or PromptNotFound (also for another user's: never 403)."""
        prompt = await self.prompts.get_for_user(user.id, prompt_id)
        if prompt is None:
            raise PromptNotFound()
        return prompt

    async def list_prompts(self, user: User) -> Sequence[Prompt]:
        return await self.prompts.list_for_user(user.id)

    async def update(self, prompt: Prompt, data: PromptUpdate) -> Prompt:
        """Changes the fields sent; a command another prompt has is CommandTaken (409)."""
        sent = data.model_fields_set
        if "command" in sent and data.command is not None and data.command != prompt.command:
            if await self.prompts.command_taken(prompt.user_id, data.command, apart_from=prompt.id):
                raise CommandTaken()
            prompt.command = data.command
        if "name" in sent and data.name is not None:
            prompt.name = data.name
        if "content" in sent and data.content is not None:
            prompt.content = data.content
        await self._flush()
        return prompt

    async def delete(self, prompt: Prompt) -> None:
        await self.prompts.delete(prompt)
