import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import AwareDatetime

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
from app.core.cursor import Cursor, CursorQuery, InvalidCursor
from app.core.deps import SessionDep, SettingsDep
from app.core.errors import AppError, ServiceUnavailable, Unauthorized, error_responses
from app.core.ratelimit import RateLimited
from app.generation.client import (
    UpstreamHTTPError,
    UpstreamIncomplete,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from app.generation.dependencies import GenerationRuntimeDep, GenerationServiceDep
from app.generation.events import SSE_HEADERS, EventStream
from app.generation.prompt import PromptTooLong
from app.generation.registry import UnknownModel
from app.generation.repository import GenerationRepository
from app.generation.runs import GenerationInProgress, GenerationRun
from app.generation.schemas import (
    EditMessageRequest,
    GenerateRequest,
    GenerationPage,
    GenerationRead,
    ModelRead,
    RegenerateRequest,
    SendMessageRequest,
    StopResult,
    SummarizeRequest,
    SummaryRead,
)
from app.generation.service import InputBlocked, InputTooLarge
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
    GenerationInProgress,
    UpstreamUnavailable,
    UpstreamHTTPError,
    UpstreamIncomplete,
    UpstreamTimeout,
)


def _reply_responses(model: type[Any], *errors: type[AppError]) -> dict[int | str, dict[str, Any]]:
    return {
        200: {
            "description": SSE_DESCRIPTION,
            "model": model,
            "content": {"text/event-stream": {"schema": SSE_EVENT_SCHEMA}},
        },
        **error_responses(*REPLY_ERRORS, *errors),
    }


def _wants_stream(request: Request, flag: bool | None) -> bool:
    if flag is not None:
        return flag
    return "text/event-stream" in request.headers.get("accept", "")


class ReplyFailed(AppError):
    pass


async def _respond(
    request: Request, run: GenerationRun, stream: bool | None, ping: float
) -> Response:
    if _wants_stream(request, stream):
        return EventStream(
            (event.sse() async for event in run.events()),
            ping=ping,
            headers={**SSE_HEADERS, **run.headers},
        )
    await run.wait()
    result = run.result
    if result is not None and run.saved is not None and result.status in ("complete", "cancelled"):
        return JSONResponse(run.saved, headers=run.headers)
    error = ReplyFailed(result.error_message if result else None)
    error.status_code = result.http_status if result and result.http_status >= 400 else 502
    error.code = (result.error_code if result else None) or "generation_failed"
    raise error


@router.post(
    "/api/chats/{chat_id}/messages",
    summary="Send a message and get the reply (SSE or JSON)",
    response_model=MessageRead,
    responses=_reply_responses(MessageRead, ChatNotFound),
)
async def send_message(
    request: Request,
    body: SendMessageRequest,
    chat: OwnedChat,
    user: GenerationUser,
    service: GenerationServiceDep,
    settings: SettingsDep,
) -> Response:
    """Saves the user's message, then streams or returns the assistant's reply."""
    run = await service.send_message(
        user, chat, content=body.content, model=body.model, parent_id=body.parent_id
    )
    return await _respond(request, run, body.stream, settings.sse_ping_seconds)


@router.patch(
    "/api/chats/{chat_id}/messages/{message_id}",
    summary="Edit a user message and answer the new version",
    response_model=MessageRead,
    responses=_reply_responses(MessageRead, ChatNotFound, MessageNotFound, MessageNotEditable),
)
async def edit_message(
    request: Request,
    message_id: uuid.UUID,
    body: EditMessageRequest,
    chat: OwnedChat,
    user: GenerationUser,
    service: GenerationServiceDep,
    settings: SettingsDep,
) -> Response:
    """The edit becomes a sibling of the original (which is kept) and gets a fresh reply."""
    run = await service.edit_message(user, chat, message_id, content=body.content, model=body.model)
    return await _respond(request, run, body.stream, settings.sse_ping_seconds)


@router.post(
    "/api/chats/{chat_id}/messages/{message_id}/regenerate",
    summary="Regenerate a reply",
    response_model=MessageRead,
    responses=_reply_responses(MessageRead, ChatNotFound, MessageNotFound, MessageNotRegenerable),
)
async def regenerate_message(
    request: Request,
    message_id: uuid.UUID,
    chat: OwnedChat,
    user: GenerationUser,
    service: GenerationServiceDep,
    settings: SettingsDep,
    body: RegenerateRequest | None = None,
) -> Response:
    """Answers the same user message again; the new reply is a sibling of the old one."""
    body = body or RegenerateRequest()
    run = await service.regenerate(user, chat, message_id, model=body.model)
    return await _respond(request, run, body.stream, settings.sse_ping_seconds)


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
    service: GenerationServiceDep,
    body: SummarizeRequest | None = None,
) -> SummaryRead:
    """Summarizes the current thread and stores the summary on the chat."""
    chat_id = chat.id
    summary = await service.summarize(user, chat, model=(body.model if body else None))
    return SummaryRead(chat_id=chat_id, summary=summary)


@router.post(
    "/api/generate",
    summary="Stateless generation (SSE or JSON)",
    response_model=GenerationRead,
    responses=_reply_responses(GenerationRead, InvalidModeParams, UnknownMode),
)
async def generate(
    request: Request,
    body: GenerateRequest,
    user: GenerationUser,
    service: GenerationServiceDep,
    settings: SettingsDep,
) -> Response:
    """Runs a mode (e.g. the email writer) over a prompt; kept in GET /api/generations."""
    run = await service.generate(user, body)
    return await _respond(request, run, body.stream, settings.sse_ping_seconds)


class GenerationCursor(Cursor):
    k: Literal["generations"] = "generations"
    t: AwareDatetime
    i: uuid.UUID


@router.get(
    "/api/generations",
    summary="My stateless generations",
    responses=error_responses(Unauthorized, InvalidCursor),
)
async def list_generations(
    user: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: CursorQuery = None,
) -> GenerationPage:
    """Newest first, with settings, output, model, token counts and timestamps."""
    position = GenerationCursor.decode(cursor) if cursor else None
    after = (position.t, position.i) if position else None
    rows = await GenerationRepository(session).page(user.id, limit=limit + 1, after=after)
    items = [GenerationRead.model_validate(row) for row in rows[:limit]]
    last = rows[limit - 1] if len(rows) > limit else None
    next_cursor = (
        GenerationCursor(t=last.created_at, i=last.id).encode() if last is not None else None
    )
    return GenerationPage(items=items, next_cursor=next_cursor)


@router.get("/api/models", summary="Available models", responses=error_responses(Unauthorized))
async def list_models(_user: CurrentUser, generation: GenerationRuntimeDep) -> list[ModelRead]:
    """Every model a chat or request may name; `built_in` marks the local echo model."""
    registry = generation.registry
    return [
        ModelRead(
            name=model.name,
            provider=model.provider,
            built_in=model.provider == "echo",
            context_length=model.context_length,
            default=model.name == registry.default,
        )
        for model in registry.all()
    ]
