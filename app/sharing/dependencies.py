from typing import Annotated

from fastapi import Depends

from app.chats.dependencies import ChatServiceDep
from app.core.deps import SettingsDep, UnitOfWorkDep
from app.sharing.service import ShareService


async def get_share_service(
    uow: UnitOfWorkDep, chats: ChatServiceDep, settings: SettingsDep
) -> ShareService:
    # Links open the web client's /s/ page: on the frontend's own origin when it has one.
    base_url = settings.frontend_url or settings.public_base_url
    return ShareService(uow, chats, secret_key=settings.secret_key, base_url=base_url)


ShareServiceDep = Annotated[ShareService, Depends(get_share_service)]
