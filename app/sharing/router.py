"""Share links: the owner's endpoints (under the chat, and the list of their shares), and the
public ones anyone with a token may call, without an account."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from app.auth.dependencies import CurrentUser
from app.chats.dependencies import OwnedChat
from app.chats.errors import ChatNotFound
from app.chats.schemas import ChatRead
from app.core.errors import Unauthorized, error_responses
from app.core.ratelimit import RateLimited, limit_by_ip
from app.files.dependencies import FileServiceDep
from app.files.errors import StorageUnavailable
from app.files.router import BlobResponse, _content_type, content_headers
from app.sharing.dependencies import ShareServiceDep
from app.sharing.errors import SharedFileNotFound, ShareNotFound
from app.sharing.schemas import SharedChat, ShareRead

# The owner's side: routes of the chats (API keys with the chats scope may call them).
router = APIRouter(tags=["sharing"])
# Anyone's side: no account, limited per client IP, never indexed, never cached (a revoked link
# must stop working at once, also for a proxy or the browser's back button).
public_router = APIRouter(prefix="/api/shared", tags=["sharing"])

PUBLIC_HEADERS = {"X-Robots-Tag": "noindex, nofollow", "Cache-Control": "no-store"}
Token = Annotated[str, Path(description="The link's token, from POST /api/chats/{chat_id}/share.")]


@router.post(
    "/api/chats/{chat_id}/share",
    summary="Share a chat by link",
    responses=error_responses(Unauthorized, ChatNotFound),
)
async def share_chat(chat: OwnedChat, user: CurrentUser, service: ShareServiceDep) -> ShareRead:
    """A read-only link to the current branch up to its newest message. Later turns stay private
    until you share again, which moves the snapshot forward and keeps the link."""
    return await service.share(user, chat)


@router.delete(
    "/api/chats/{chat_id}/share",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke a chat's link",
    responses=error_responses(Unauthorized, ChatNotFound),
)
async def revoke_share(chat: OwnedChat, service: ShareServiceDep) -> Response:
    """The link stops working at once (204 also when the chat had none)."""
    await service.revoke(chat)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/api/shares", summary="List my shared chats", responses=error_responses(Unauthorized))
async def list_shares(user: CurrentUser, service: ShareServiceDep) -> list[ShareRead]:
    """Your chats shared by link (out of the trash), most recently shared first."""
    return await service.list_shares(user)


@public_router.get(
    "/{token}",
    summary="Read a shared chat",
    dependencies=[limit_by_ip("shared")],
    responses=error_responses(ShareNotFound, RateLimited),
)
async def read_shared_chat(
    token: Token, service: ShareServiceDep, response: Response
) -> SharedChat:
    """No account needed: the title and the branch as it was shared, with its sources and
    images; never the owner, other branches or other attachments."""
    response.headers.update(PUBLIC_HEADERS)
    return await service.shared_chat(token)


@public_router.get(
    "/{token}/files/{file_id}",
    summary="Get an image of a shared chat",
    response_class=Response,
    dependencies=[limit_by_ip("shared")],
    responses={
        200: {
            "description": "The image's bytes.",
            "content": {"image/*": {"schema": {"type": "string", "format": "binary"}}},
        },
        **error_responses(ShareNotFound, SharedFileNotFound, RateLimited, StorageUnavailable),
    },
)
async def read_shared_image(
    token: Token, file_id: uuid.UUID, service: ShareServiceDep, files: FileServiceDep
) -> Response:
    """An image attached to a message of the shared branch, and no other file."""
    file = await service.shared_image(token, file_id)
    blob = await files.open_content(file)
    return BlobResponse(
        blob, media_type=_content_type(file), headers={**content_headers(file), **PUBLIC_HEADERS}
    )


@public_router.post(
    "/{token}/continue",
    status_code=status.HTTP_201_CREATED,
    summary="Continue a shared chat",
    responses=error_responses(Unauthorized, ShareNotFound, RateLimited),
    dependencies=[limit_by_ip("shared")],
)
async def continue_shared_chat(
    token: Token, user: CurrentUser, service: ShareServiceDep
) -> ChatRead:
    """Copies the shared branch (its texts) into a new chat of yours, to carry on from."""
    return ChatRead.model_validate(await service.continue_chat(user, token))
