import uuid
from typing import Annotated

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth.dependencies import CurrentUser
from app.chats.models import Chat
from app.chats.repository import ChatRepository, MessageRepository
from app.chats.service import ChatService
from app.core.deps import SessionDep


def build_chat_service(session: AsyncSession) -> ChatService:
    return ChatService(chats=ChatRepository(session), messages=MessageRepository(session))


async def get_chat_service(session: SessionDep) -> ChatService:
    return build_chat_service(session)


ChatServiceDep = Annotated[ChatService, Depends(get_chat_service)]


async def get_owned_chat(chat_id: uuid.UUID, user: CurrentUser, service: ChatServiceDep) -> Chat:
    """Loads the chat in the path if it belongs to the caller; ChatNotFound (404) otherwise."""
    return await service.get_owned_chat(user, chat_id)


OwnedChat = Annotated[Chat, Depends(get_owned_chat)]
