"""Every SQL statement of the /v1 surface: stored responses."""

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.openai_api.models import StoredResponse


class ResponseRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, response: StoredResponse) -> StoredResponse:
        self.session.add(response)
        await self.session.flush()
        return response

    async def get_owned(self, response_id: uuid.UUID, user_id: uuid.UUID) -> StoredResponse | None:
        """The user's response; another user's is None, as if it did not exist."""
        row = await self.session.scalar(
            select(StoredResponse).where(
                StoredResponse.id == response_id, StoredResponse.user_id == user_id
            )
        )
        return row
