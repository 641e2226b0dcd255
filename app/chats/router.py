import uuid
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Response, status

from app.auth.dependencies import CurrentUser
from app.chats.dependencies import ChatServiceDep, OwnedChat, OwnedChatWithTrash
from app.chats.errors import (
    ChatNotFound,
    InvalidCursor,
    InvalidModeParams,
    MessageNotFound,
    UnknownMode,
)
from app.chats.modes import MODES
from app.chats.schemas import (
    MAX_QUERY_LENGTH,
    ChatCreate,
    ChatExport,
    ChatPage,
    ChatRead,
    ChatUpdate,
    ExportFormat,
    MessagePage,
    ModeRead,
    TagCount,
)
from app.chats.tags import normalise_tag
from app.core.cursor import CursorQuery
from app.core.deps import SettingsDep
from app.core.errors import Unauthorized, error_responses
from app.core.text import NoNul
from app.guardrails.pipeline import checks_by_point
from app.guardrails.schemas import ModeGuardrails
from app.knowledge.errors import CollectionNotFound
from app.projects.errors import ProjectNotFound

router = APIRouter(prefix="/api/chats", tags=["chats"])
modes_router = APIRouter(prefix="/api/modes", tags=["generation"])
tags_router = APIRouter(prefix="/api/tags", tags=["chats"])

Limit = Annotated[int, Query(ge=1, le=100, description="Page size.")]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a chat",
    responses=error_responses(
        Unauthorized, InvalidModeParams, UnknownMode, CollectionNotFound, ProjectNotFound
    ),
)
async def create_chat(body: ChatCreate, user: CurrentUser, service: ChatServiceDep) -> ChatRead:
    """Creates a chat with a mode, its parameters and optional generation settings."""
    return ChatRead.model_validate(await service.create_chat(user, body))


@router.get(
    "",
    summary="List my chats",
    responses=error_responses(Unauthorized, InvalidCursor),
)
async def list_chats(
    user: CurrentUser,
    service: ChatServiceDep,
    limit: Limit = 20,
    cursor: CursorQuery = None,
    pinned: Annotated[bool | None, Query(description="Only pinned (or unpinned) chats.")] = None,
    archived: Annotated[bool, Query(description="Archived chats instead of active ones.")] = False,
    trashed: Annotated[
        bool,
        Query(description="The chats in the trash instead (archived or not; `archived` ignored)."),
    ] = False,
    q: Annotated[
        str | None,
        Query(
            max_length=MAX_QUERY_LENGTH,
            description="Words that start words of the title or of a message, all required.",
        ),
        NoNul,
    ] = None,
    project_id: Annotated[
        uuid.UUID | None, Query(description="Only the chats of this project of yours.")
    ] = None,
    tag: Annotated[
        str | None,
        Query(max_length=100, description="Only the chats with this tag (GET /api/tags)."),
        NoNul,
    ] = None,
) -> ChatPage:
    """Pinned chats first, then by latest activity; pass `next_cursor` back for more."""
    return await service.list_chats(
        user,
        limit=limit,
        cursor=cursor,
        pinned=pinned,
        archived=archived,
        trashed=trashed,
        query=q,
        project_id=project_id,
        tag=normalise_tag(tag) if tag is not None else None,
    )


@router.get(
    "/{chat_id}",
    summary="Get a chat",
    responses=error_responses(Unauthorized, ChatNotFound),
)
async def get_chat(chat: OwnedChat) -> ChatRead:
    """One chat with its mode and settings."""
    return ChatRead.model_validate(chat)


@router.patch(
    "/{chat_id}",
    summary="Rename, pin, archive or change a chat's settings",
    responses=error_responses(
        Unauthorized,
        ChatNotFound,
        CollectionNotFound,
        ProjectNotFound,
        InvalidModeParams,
        UnknownMode,
    ),
)
async def update_chat(chat: OwnedChat, body: ChatUpdate, service: ChatServiceDep) -> ChatRead:
    """Changes only the fields sent; null resets a setting to its default."""
    return ChatRead.model_validate(await service.update_chat(chat, body))


@router.delete(
    "/{chat_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Move a chat to the trash, or delete it for good",
    responses=error_responses(Unauthorized, ChatNotFound),
)
async def delete_chat(
    chat: OwnedChatWithTrash,
    service: ChatServiceDep,
    permanent: Annotated[
        bool,
        Query(description="Delete the chat and its messages for good, from the trash or not."),
    ] = False,
) -> Response:
    """Moves the chat to the trash (restorable for TRASH_DAYS), or deletes it with `permanent`."""
    await service.delete_chat(chat, permanent=permanent)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{chat_id}/restore",
    summary="Restore a chat from the trash",
    responses=error_responses(Unauthorized, ChatNotFound),
)
async def restore_chat(chat: OwnedChatWithTrash, service: ChatServiceDep) -> ChatRead:
    """Takes the chat out of the trash, back into the list it came from."""
    return ChatRead.model_validate(await service.restore_chat(chat))


@router.get(
    "/{chat_id}/messages",
    summary="List a chat's messages",
    responses=error_responses(Unauthorized, ChatNotFound, MessageNotFound, InvalidCursor),
)
async def list_messages(
    chat: OwnedChat,
    service: ChatServiceDep,
    limit: Limit = 50,
    cursor: CursorQuery = None,
    leaf_id: Annotated[
        uuid.UUID | None,
        Query(description="Show the branch through this message (e.g. a sibling version)."),
    ] = None,
) -> MessagePage:
    """The newest messages of the current thread (or of `leaf_id`'s branch), oldest first."""
    return await service.list_messages(chat, limit=limit, cursor=cursor, leaf_id=leaf_id)


@router.get(
    "/{chat_id}/export",
    summary="Download a chat",
    response_class=Response,
    responses={
        200: {
            "model": ChatExport,
            "description": "The file, as an attachment (JSON: ChatExport; or Markdown text).",
            "content": {"text/markdown": {"schema": {"type": "string"}}},
        },
        **error_responses(Unauthorized, ChatNotFound, MessageNotFound),
    },
)
async def export_chat(
    chat: OwnedChat,
    service: ChatServiceDep,
    export_format: Annotated[
        ExportFormat, Query(alias="format", description="json: every branch; markdown: one.")
    ] = "json",
    leaf_id: Annotated[
        uuid.UUID | None, Query(description="The branch to export (default: current).")
    ] = None,
) -> Response:
    """JSON (every message, with the tree) or Markdown (the thread), as a download."""
    file = await service.export_chat(chat, export_format, leaf_id=leaf_id)
    disposition = (
        f"attachment; filename=\"{file.filename}\"; filename*=UTF-8''{quote(file.filename)}"
    )
    return Response(
        file.content, media_type=file.media_type, headers={"Content-Disposition": disposition}
    )


@tags_router.get("", summary="List my tags", responses=error_responses(Unauthorized))
async def list_tags(user: CurrentUser, service: ChatServiceDep) -> list[TagCount]:
    """Every tag on your chats (out of the trash), by name, with how many chats carry it."""
    return [TagCount(tag=tag, count=count) for tag, count in await service.tag_counts(user)]


@modes_router.get("", summary="List chat modes")
async def list_modes(settings: SettingsDep) -> list[ModeRead]:
    """Every mode with its parameter schema (use `name` and `mode_params` on a chat), and the
    guardrail checks on for it."""
    return [
        ModeRead(
            name=mode.name,
            title=mode.title,
            description=mode.description,
            params_schema=mode.params.model_json_schema(),
            vision=mode.vision,
            guardrails=ModeGuardrails(**checks_by_point(settings, mode.name)),
        )
        for mode in MODES.values()
    ]
