import uuid
from collections.abc import Sequence

from sqlalchemy import select

from app.core.repository import Repository
from app.prompts.models import Prompt


class PromptRepository(Repository[Prompt]):
    model = Prompt

    def stage(self, prompt: Prompt) -> None:
        """Adds the prompt to the session; it is written at the next flush."""
        self.session.add(prompt)

    async def get_for_user(self, user_id: uuid.UUID, prompt_id: uuid.UUID) -> Prompt | None:
        return await self.session.scalar(
            select(Prompt).where(Prompt.id == prompt_id, Prompt.user_id == user_id)
        )

    async def command_taken(
        self, user_id: uuid.UUID, command: str, *, apart_from: uuid.UUID | None = None
    ) -> bool:
        statement = select(Prompt.id).where(Prompt.user_id == user_id, Prompt.command == command)
        if apart_from is not None:
            statement = statement.where(Prompt.id != apart_from)
        return await self.session.scalar(statement.limit(1)) is not None

    async def list_for_user(self, user_id: uuid.UUID) -> Sequence[Prompt]:
        """The user's prompts by command."""
        return list(
            await self.session.scalars(
                select(Prompt).where(Prompt.user_id == user_id).order_by(Prompt.command)
            )
        )
