"""The generation endpoints: chat replies, stateless generation and its history, models."""

import logging
import uuid
from dataclasses import dataclass
from typing import Annotated, Any, get_args

from fastapi import APIRouter, Depends, Header, Query, Request
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
from app.generation.dependencies import (
    GenerationServiceDep,
    ReplyResumerDep,
    SummaryServiceDep,
)
from app.generation.errors import (
    ApprovalNotPending,
    IdempotencyKeyInProgress,
    IdempotencyKeyReused,
    ImageRequired,
    InputBlocked,
    InputTooLarge,
    InvalidIdempotencyKey,
    InvalidLastEventId,
    ModelNotVisionCapable,
    PromptTooLong,
    ReplyInProgress,
    UnknownModel,
    UpstreamHTTPError,
    UpstreamIncomplete,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from app.generation.idempotency import parse_key
from app.generation.reply_events import (
    SSE_HEADERS,
    EventName,
    EventStream,
    event_stream_class,
)
from app.generation.reply_stream import ReplyStream
from app.generation.requests import (
    EditMessage,
    Generate,
    Regenerate,
    ReplyRequest,
    SendMessage,
    StartChat,
)
from app.generation.resume import ReplyResumer, SavedReply
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
    ToolApproval,
    ToolApprovalResult,
)
from app.generation.service import GenerationService
from app.knowledge.errors import CollectionNotFound
from app.usage.service import QuotaExceeded
from app.users.models import User

logger = logging.getLogger("parley.generation")

router = APIRouter(tags=["generation"])

SSE_DESCRIPTION = (
    'With `Accept: text/event-stream` (or `"stream": true`) the reply streams as Server-Sent '
    "Events: `start`, `sources` (what retrieval put in the prompt, when the chat or message "
    'names collections; before the first delta), many `delta` ({"content"}), `usage`, then '
    '`done` (the saved message) or `error` ({"code", "message"}). Every event has an `id` to '
    "rejoin from; clients ignore event names they do not know. Otherwise one JSON answer when "
    "the reply is complete."
)


# One Server-Sent Event, as a browser's EventSource sees it: a name and a JSON `data` string.
SSE_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "event": {"type": "string", "enum": list(get_args(EventName))},
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
    InvalidIdempotencyKey,
    IdempotencyKeyReused,
    IdempotencyKeyInProgress,
    InvalidLastEventId,
)

# The IETF httpapi draft's header: a retry with the same key gets the same reply.
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Any unique string (a UUID) of 1 to 255 visible characters. The same key and "
        "body within IDEMPOTENCY_KEY_HOURS (24) gets the same reply: its stream rejoined while "
        "it runs, its saved outcome after; no second generation starts. Another body with the "
        "key is 422 `idempotency_key_reused`; one still being prepared is 409.",
    ),
]
# As browsers' EventSource sends it on reconnecting.
LastEventIdHeader = Annotated[
    str | None,
    Header(
        alias="Last-Event-ID",
        description="The `id` of the last event received: only later events are sent.",
    ),
]
# The response header of an answer replayed for a repeated Idempotency-Key.
REPLAYED_HEADER = "Idempotent-Replayed"


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
        return event_stream_class(settings.sse_sender)(
            (event.sse() async for event in reply.events()),
            ping=settings.sse_ping_seconds,
            headers={**SSE_HEADERS, **reply.headers},
        )
    return JSONResponse(await reply.saved_reply(), headers=reply.headers)


def _last_event_id(header: str | None, query: int | None = None) -> int:
    """Where a rejoining client left off: `last_event_id` (query) or Last-Event-ID (header)."""
    if query is not None:
        return query
    if header is None or not header.strip():
        return 0
    value = header.strip()
    if not value.isascii() or not value.isdigit() or len(value) > 9:
        raise InvalidLastEventId()
    return int(value)


async def _rejoin(
    request: Request,
    resumer: ReplyResumer,
    reply: SavedReply,
    stream: bool | None,
    *,
    after: int = 0,
    headers: dict[str, str] | None = None,
) -> Response:
    """A reply started earlier, as SSE (the events after `after`, live to its end) or JSON."""
    if _wants_stream(request, stream):
        settings: Settings = request.app.state.runtime.settings
        return event_stream_class(settings.sse_sender)(
            (event.sse() async for event in resumer.events(reply, after)),
            ping=settings.sse_ping_seconds,
            headers={**SSE_HEADERS, **(headers or {})},
        )
    return JSONResponse(await resumer.outcome(reply), headers=headers)


@dataclass
class ReplyAnswer:
    """Starts the reply a route asks for and answers it (SSE or JSON): the reply itself, or the
    one an earlier attempt with the same Idempotency-Key started, rejoined."""

    request: Request
    user: User
    service: GenerationService
    resumer: ReplyResumer
    key_header: str | None

    async def __call__(self, reply_request: ReplyRequest, stream: bool | None) -> Response:
        outcome = await self.service.reply(
            self.user, reply_request, idempotency_key=parse_key(self.key_header)
        )
        if isinstance(outcome, ReplyStream):
            return await _answer(self.request, outcome, stream)
        return await _rejoin(
            self.request,
            self.resumer,
            outcome,
            stream,
            after=_last_event_id(self.request.headers.get("last-event-id")),
            headers={REPLAYED_HEADER: "true"},
        )


async def get_reply_answer(
    request: Request,
    user: GenerationUser,
    service: GenerationServiceDep,
    resumer: ReplyResumerDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> ReplyAnswer:
    return ReplyAnswer(request, user, service, resumer, idempotency_key)


# What every route that starts a reply answers with (its Idempotency-Key header included).
Answer = Annotated[ReplyAnswer, Depends(get_reply_answer)]


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
    answer: Answer,
) -> Response:
    """Saves the user's message, then streams or returns the assistant's reply."""
    return await answer(
        SendMessage(
            chat=chat,
            content=body.content,
            model=body.model,
            parent_id=body.parent_id,
            attachments=body.attachments,
            collection_ids=body.collection_ids,
            tool_ids=body.tool_ids,
        ),
        body.stream,
    )


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
    answer: Answer,
) -> Response:
    """Creates the chat and answers like sending a message to it (the `start` event and the
    reply carry `chat_id`). A send refused before the reply starts leaves no chat, and so does a
    reply that fails before its first token."""
    return await answer(
        StartChat(data=body, content=body.content, attachments=body.attachments), body.stream
    )


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
    answer: Answer,
) -> Response:
    """The edit becomes a sibling of the original (which is kept) and gets a fresh reply."""
    return await answer(
        EditMessage(
            chat=chat,
            message_id=message_id,
            content=body.content,
            model=body.model,
            attachments=body.attachments,
        ),
        body.stream,
    )


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
    answer: Answer,
    body: RegenerateRequest | None = None,
) -> Response:
    """Answers the same user message again; the new reply is a sibling of the old one."""
    body = body or RegenerateRequest()
    return await answer(Regenerate(chat=chat, message_id=message_id, model=body.model), body.stream)


@router.get(
    "/api/chats/{chat_id}/messages/{message_id}/stream",
    summary="Rejoin a reply's stream (SSE)",
    response_class=EventStream,
    responses={
        200: {
            "description": "The reply's events after `Last-Event-ID` (header, as EventSource "
            "sends it, or the `last_event_id` query parameter), in order, then live to its end. "
            "A reply that has ended sends what was missed, or once its events have expired its "
            "saved outcome (`done` or `error`) at once.",
            "content": {"text/event-stream": {"schema": SSE_EVENT_SCHEMA}},
        },
        **error_responses(Unauthorized, ChatNotFound, MessageNotFound, InvalidLastEventId),
    },
)
async def stream_reply(
    chat_id: uuid.UUID,
    message_id: uuid.UUID,
    user: CurrentUser,
    resumer: ReplyResumerDep,
    request: Request,
    last_event_id: Annotated[
        int | None, Query(ge=0, le=999_999_999, description="Instead of the Last-Event-ID header.")
    ] = None,
    last_event_id_header: LastEventIdHeader = None,
) -> Response:
    """Rejoins an assistant reply after a dropped connection, on any worker: exactly the events
    missed, then the rest live. Starts no generation."""
    after = _last_event_id(last_event_id_header, last_event_id)
    reply = await resumer.chat_reply(user.id, chat_id, message_id)
    return await _rejoin(request, resumer, reply, True, after=after)


@router.post(
    "/api/chats/{chat_id}/stop",
    summary="Stop the reply being generated",
    responses=error_responses(Unauthorized, CsrfFailed, ChatNotFound, ServiceUnavailable),
)
async def stop_generation(chat: OwnedChat, service: GenerationServiceDep) -> StopResult:
    """Stops this chat's running reply; the text so far is saved as `cancelled`."""
    return StopResult(stopped=await service.stop(chat))


@router.post(
    "/api/chats/{chat_id}/messages/{message_id}/tool-approvals",
    summary="Approve or refuse a tool call waiting in a reply",
    responses=error_responses(
        Unauthorized, CsrfFailed, ChatNotFound, MessageNotFound, ApprovalNotPending
    ),
)
async def answer_tool_call(
    message_id: uuid.UUID, body: ToolApproval, chat: OwnedChat, service: GenerationServiceDep
) -> ToolApprovalResult:
    """Answers an `approval_required` event of the reply `message_id`: the call runs, or the
    model is told the user refused it. 409 `approval_not_pending` when no call of that reply
    waits under `call_id` (answered already, timed out, or the reply ended)."""
    await service.answer_tool_call(chat, message_id, body.call_id, body.approve)
    return ToolApprovalResult(call_id=body.call_id, approved=body.approve)


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
    body: GenerateRequest,
    answer: Answer,
) -> Response:
    """Runs a mode (e.g. the email writer) over a prompt; kept in GET /api/generations."""
    return await answer(Generate(body=body), body.stream)


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
async def list_models(user: CurrentUser, service: GenerationServiceDep) -> list[ModelRead]:
    """Every model you may name in a chat or request (a model restricted to groups you are not
    in is not listed); `built_in` marks the local echo model."""
    return await service.list_models(user)
