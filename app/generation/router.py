"""The generation endpoints: chat replies, stateless generation and its history, models."""

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from app.auth.dependencies import CurrentUser, GenerationUser
from app.auth.errors import CsrfFailed, EmailNotVerified
from app.chats.dependencies import OwnedChat
from app.chats.errors import (
    ChatNotFound,
    InvalidModeParams,
    MessageNotEditable,
    MessageNotFound,
    MessageNotRegenerable,
    UnknownMode,
)
from app.chats.schemas import MessageRead
from app.core.config import Settings
from app.core.cursor import CursorQuery, InvalidCursor
from app.core.errors import AppError, ServiceUnavailable, Unauthorized, error_responses
from app.core.ratelimit import RateLimited
from app.files.errors import (
    CorruptFile,
    DocumentEncrypted,
    DocumentHasNoText,
    DocumentUnreadable,
    DuplicateAttachment,
    FileNotFound,
    ImageTooLarge,
    StorageUnavailable,
    TooManyAttachments,
)
from app.generation.dependencies import GenerationServiceDep, SummaryServiceDep
from app.generation.errors import (
    ImageRequired,
    InputBlocked,
    InputTooLarge,
    ModelNotVisionCapable,
    PromptTooLong,
    ReplyInProgress,
    UnknownModel,
    UpstreamHTTPError,
    UpstreamIncomplete,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from app.generation.reply_events import SSE_HEADERS, EventStream
from app.generation.reply_stream import ReplyStream
from app.generation.schemas import (
    EditMessageRequest,
    GenerateRequest,
    GenerationPage,
    GenerationRead,
    ModelRead,
    RegenerateRequest,
    SendMessageRequest,
    StartChatRequest,
    StopResult,
    SummarizeRequest,
    SummaryRead,
)
from app.knowledge.errors import CollectionNotFound
from app.usage.service import QuotaExceeded

router = APIRouter(tags=["generation"])

SSE_DESCRIPTION = (
    'With `Accept: text/event-stream` (or `"stream": true`) the reply streams as Server-Sent '
    'Events: `start`, many `delta` ({"content"}), `usage`, then `done` (the saved message) or '
    '`error` ({"code", "message"}). Otherwise one JSON answer when the reply is complete.'
)


# One Server-Sent Event, as a browser's EventSource sees it: a name and a JSON `data` string.
SSE_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "event": {"type": "string", "enum": ["start", "delta", "usage", "done", "error"]},
        "data": {"type": "string", "description": "A JSON object; see the SSE contract."},
    },
    "required": ["event", "data"],
}


REPLY_ERRORS = (
    Unauthorized,
    CsrfFailed,
    EmailNotVerified,
    RateLimited,
    QuotaExceeded,
    UnknownModel,
    InputTooLarge,
    InputBlocked,
    PromptTooLong,
    ReplyInProgress,
    UpstreamUnavailable,
    UpstreamHTTPError,
    UpstreamIncomplete,
    UpstreamTimeout,
)


# Refused before anything is stored: files that are not the caller's, too many or the same twice,
# images for a text-only model, documents whose text cannot be read (each names the file), the
# storage unreachable.
ATTACHMENT_ERRORS = (
    ModelNotVisionCapable,
    FileNotFound,
    TooManyAttachments,
    DuplicateAttachment,
    DocumentEncrypted,
    DocumentUnreadable,
    DocumentHasNoText,
    CorruptFile,
    ImageTooLarge,
    StorageUnavailable,
)


def _reply_route(
    method: str, path: str, summary: str, model: type[BaseModel], *errors: type[AppError]
) -> Any:
    """Declares a route answered with a reply: its OpenAPI shows the JSON and the SSE answer, and
    the errors of every reply plus the route's own."""
    return router.api_route(
        path,
        methods=[method],
        summary=summary,
        response_model=model,
        responses={
            200: {
                "description": SSE_DESCRIPTION,
                "model": model,
                "content": {"text/event-stream": {"schema": SSE_EVENT_SCHEMA}},
            },
            **error_responses(*REPLY_ERRORS, *errors),
        },
    )


def _wants_stream(request: Request, flag: bool | None) -> bool:
    if flag is not None:
        return flag
    return "text/event-stream" in request.headers.get("accept", "")


async def _answer(request: Request, reply: ReplyStream, stream: bool | None) -> Response:
    """The reply as SSE when the client asks for a stream, else as JSON once it is saved."""
    if _wants_stream(request, stream):
        settings: Settings = request.app.state.runtime.settings
        return EventStream(
            (event.sse() async for event in reply.events()),
            ping=settings.sse_ping_seconds,
            headers={**SSE_HEADERS, **reply.headers},
        )
    return JSONResponse(await reply.saved_reply(), headers=reply.headers)


@_reply_route(
    "POST",
    "/api/chats/{chat_id}/messages",
    "Send a message and get the reply (SSE or JSON)",
    MessageRead,
    ChatNotFound,
    CollectionNotFound,
    *ATTACHMENT_ERRORS,
)
async def send_message(
    body: SendMessageRequest,
    chat: OwnedChat,
    user: GenerationUser,
    service: GenerationServiceDep,
    request: Request,
) -> Response:
    """Saves the user's message, then streams or returns the assistant's reply."""
    reply = await service.send_message(
        user,
        chat,
        content=body.content,
        model=body.model,
        parent_id=body.parent_id,
        attachments=body.attachments,
        collection_ids=body.collection_ids,
    )
    return await _answer(request, reply, body.stream)


@_reply_route(
    "POST",
    "/api/chats/start",
    "Create a chat and send its first message (SSE or JSON)",
    MessageRead,
    CollectionNotFound,
    InvalidModeParams,
    UnknownMode,
    *ATTACHMENT_ERRORS,
)
async def start_chat(
    body: StartChatRequest,
    user: GenerationUser,
    service: GenerationServiceDep,
    request: Request,
) -> Response:
    """Creates the chat and answers like sending a message to it (the `start` event and the
    reply carry `chat_id`). A send refused before the reply starts leaves no chat, and so does a
    reply that fails before its first token."""
    reply = await service.start_chat(user, body, content=body.content, attachments=body.attachments)
    return await _answer(request, reply, body.stream)


@_reply_route(
    "PATCH",
    "/api/chats/{chat_id}/messages/{message_id}",
    "Edit a user message and answer the new version",
    MessageRead,
    ChatNotFound,
    MessageNotFound,
    MessageNotEditable,
    *ATTACHMENT_ERRORS,
)
async def edit_message(
    message_id: uuid.UUID,
    body: EditMessageRequest,
    chat: OwnedChat,
    user: GenerationUser,
    service: GenerationServiceDep,
    request: Request,
) -> Response:
    """The edit becomes a sibling of the original (which is kept) and gets a fresh reply."""
    reply = await service.edit_message(
        user, chat, message_id, content=body.content, model=body.model, attachments=body.attachments
    )
    return await _answer(request, reply, body.stream)


@_reply_route(
    "POST",
    "/api/chats/{chat_id}/messages/{message_id}/regenerate",
    "Regenerate a reply",
    MessageRead,
    ChatNotFound,
    MessageNotFound,
    MessageNotRegenerable,
    ModelNotVisionCapable,
)
async def regenerate_message(
    message_id: uuid.UUID,
    chat: OwnedChat,
    user: GenerationUser,
    service: GenerationServiceDep,
    request: Request,
    body: RegenerateRequest | None = None,
) -> Response:
    """Answers the same user message again; the new reply is a sibling of the old one."""
    body = body or RegenerateRequest()
    reply = await service.regenerate(user, chat, message_id, model=body.model)
    return await _answer(request, reply, body.stream)


@router.post(
    "/api/chats/{chat_id}/stop",
    summary="Stop the reply being generated",
    responses=error_responses(Unauthorized, CsrfFailed, ChatNotFound, ServiceUnavailable),
)
async def stop_generation(chat: OwnedChat, service: GenerationServiceDep) -> StopResult:
    """Stops this chat's running reply; the text so far is saved as `cancelled`."""
    return StopResult(stopped=await service.stop(chat))


@router.post(
    "/api/chats/{chat_id}/summarize",
    summary="Summarize the chat",
    responses=error_responses(*REPLY_ERRORS, ChatNotFound),
)
async def summarize_chat(
    chat: OwnedChat,
    user: GenerationUser,
    summaries: SummaryServiceDep,
    body: SummarizeRequest | None = None,
) -> SummaryRead:
    """Summarizes the current thread and stores the summary on the chat."""
    chat_id = chat.id
    summary = await summaries.summarize(user, chat, model=(body.model if body else None))
    return SummaryRead(chat_id=chat_id, summary=summary)


@_reply_route(
    "POST",
    "/api/generate",
    "Stateless generation (SSE or JSON)",
    GenerationRead,
    InvalidModeParams,
    UnknownMode,
    ImageRequired,
    *ATTACHMENT_ERRORS,
)
async def generate(
    body: GenerateRequest, user: GenerationUser, service: GenerationServiceDep, request: Request
) -> Response:
    """Runs a mode (e.g. the email writer) over a prompt; kept in GET /api/generations."""
    reply = await service.generate(user, body)
    return await _answer(request, reply, body.stream)


@router.get(
    "/api/generations",
    summary="My stateless generations",
    responses=error_responses(Unauthorized, InvalidCursor),
)
async def list_generations(
    user: CurrentUser,
    service: GenerationServiceDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: CursorQuery = None,
) -> GenerationPage:
    """Newest first, with settings, output, model, token counts and timestamps."""
    return await service.list_generations(user, limit=limit, cursor=cursor)


@router.get("/api/models", summary="Available models", responses=error_responses(Unauthorized))
async def list_models(_user: CurrentUser, service: GenerationServiceDep) -> list[ModelRead]:
    """Every model a chat or request may name; `built_in` marks the local echo model."""
    return service.list_models()
