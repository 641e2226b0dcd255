import uuid
from typing import Annotated

from fastapi import Depends

from app.auth.dependencies import CurrentUser
from app.chats.models import Chat
from app.chats.service import ChatService
from app.core.config import Settings
from app.core.deps import SettingsDep, UnitOfWorkDep
from app.core.uow import UnitOfWork
from app.tools.catalog import ToolCatalog
from app.tools.dependencies import ToolCatalogDep


def build_chat_service(
    uow: UnitOfWork, settings: Settings, tools: ToolCatalog | None = None
) -> ChatService:
    return ChatService(
        uow, trash_days=settings.trash_days, tools=tools, mode_tools=settings.mode_tools
    )


async def get_chat_service(
    uow: UnitOfWorkDep, settings: SettingsDep, tools: ToolCatalogDep
) -> ChatService:
    return build_chat_service(uow, settings, tools)


ChatServiceDep = Annotated[ChatService, Depends(get_chat_service)]


async def get_owned_chat(chat_id: uuid.UUID, user: CurrentUser, service: ChatServiceDep) -> Chat:
    """Loads the chat in the path if it belongs to the caller; ChatNotFound (404) otherwise."""
    return await service.get_owned_chat(user, chat_id)


OwnedChat = Annotated[Chat, Depends(get_owned_chat)]


async def get_owned_chat_with_trash(
    chat_id: uuid.UUID, user: CurrentUser, service: ChatServiceDep
) -> Chat:
    """Like get_owned_chat, but also finds the caller's chat in the trash (restore, delete)."""
    return await service.get_owned_chat(user, chat_id, with_trash=True)


OwnedChatWithTrash = Annotated[Chat, Depends(get_owned_chat_with_trash)]
