import uuid
from collections.abc import Sequence

from sqlalchemy import delete, select

from app.chats.models import Chat
from app.core.repository import Repository
from app.sharing.models import ChatShare


class ShareRepository(Repository[ChatShare]):
    model = ChatShare

    async def of_chat(self, chat_id: uuid.UUID) -> ChatShare | None:
        return await self.session.scalar(select(ChatShare).where(ChatShare.chat_id == chat_id))

    async def by_hash(self, token_hash: str) -> ChatShare | None:
        return await self.session.scalar(
            select(ChatShare).where(ChatShare.token_hash == token_hash)
        )

    async def revoke(self, chat_id: uuid.UUID) -> bool:
        """Deletes the chat's share; whether it had one."""
        result = await self.session.execute(
            delete(ChatShare).where(ChatShare.chat_id == chat_id).returning(ChatShare.id)
        )
        return result.first() is not None

    async def list_for_user(self, user_id: uuid.UUID) -> Sequence[tuple[ChatShare, Chat]]:
        """The user's shares with their chats (out of the trash), newest share first."""
        rows = await self.session.execute(
            select(ChatShare, Chat)
            .join(Chat, Chat.id == ChatShare.chat_id)
            .where(ChatShare.user_id == user_id, Chat.deleted_at.is_(None))
            .order_by(ChatShare.updated_at.desc(), ChatShare.id.desc())
        )
        return [(share, chat) for share, chat in rows]
