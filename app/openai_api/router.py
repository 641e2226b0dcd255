"""The OpenAI-compatible endpoints under /v1 (docs/openai-api.md). Errors here take OpenAI's
shape (app/core/errors.py chooses it by path); every answer carries `x-request-id`."""

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from app.chats.dependencies import ChatServiceDep
from app.chats.errors import ChatNotFound
from app.core.config import Settings
from app.core.deps import RuntimeDep, UnitOfWorkDep
from app.core.errors import AppError, OpenAIErrorResponse, Unauthorized
from app.core.ratelimit import RateLimited
from app.generation.dependencies import (
    GenerationPartsDep,
    GenerationServiceDep,
    ReplyResumerDep,
)
from app.generation.errors import ReplyFailed
from app.generation.idempotency import parse_key
from app.generation.reply_events import SSE_HEADERS, ReplyEvent, event_stream_class
from app.generation.reply_stream import ReplyStream
from app.generation.router import ATTACHMENT_ERRORS, REPLY_ERRORS, IdempotencyKeyHeader
from app.knowledge.errors import CollectionNotFound
from app.openai_api.chunks import ChatCompletionStream, ReplyParts, chat_completion
from app.openai_api.dependencies import CallerDep, GenerationCallerDep
from app.openai_api.errors import (
    InvalidParameter,
    ModelNotFound,
    PreviousResponseNotFound,
    ResponseNotFound,
    UnsupportedParameter,
)
from app.openai_api.responses import ResponseBuilder
from app.openai_api.schemas import (
    ChatCompletionRequest,
    EmbeddingRequest,
    ModelList,
    ResponsesRequest,
)
from app.openai_api.service import EmbeddingsFailed, OpenAIService, new_response_id


def documented(*errors: type[AppError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for a /v1 route: the codes each status can carry, in OpenAI's
    error shape."""
    by_status: dict[int, list[type[AppError]]] = {}
    for error in errors:
        by_status.setdefault(error.status_code, []).append(error)
    return {
        status: {
            "model": OpenAIErrorResponse,
            "description": "; ".join(f"`{e.code}`: {e.message}" for e in group),
        }
        for status, group in sorted(by_status.items())
    }


# What every /v1 reply can be refused or fail with, besides the route's own.
COMPLETION_ERRORS = (
    *REPLY_ERRORS,
    *ATTACHMENT_ERRORS,
    ModelNotFound,
    UnsupportedParameter,
    InvalidParameter,
    ChatNotFound,
    CollectionNotFound,
    ReplyFailed,
)

router = APIRouter(prefix="/v1", tags=["openai"])


async def get_openai_service(
    uow: UnitOfWorkDep,
    runtime: RuntimeDep,
    parts: GenerationPartsDep,
    generation: GenerationServiceDep,
    chats: ChatServiceDep,
    resumer: ReplyResumerDep,
) -> OpenAIService:
    return OpenAIService(
        uow=uow,
        db=runtime.db,
        settings=runtime.settings,
        parts=parts,
        generation=generation,
        chats=chats,
        resumer=resumer,
    )


OpenAIServiceDep = Annotated[OpenAIService, Depends(get_openai_service)]


def _event_stream(
    request: Request, frames: AsyncIterator[bytes], headers: dict[str, str]
) -> Response:
    settings: Settings = request.app.state.runtime.settings
    return event_stream_class(settings.sse_sender)(
        frames, ping=settings.sse_ping_seconds, headers={**SSE_HEADERS, **headers}
    )


def _finish_reason(reply: ReplyStream | None) -> Any:
    def finish_reason() -> str | None:
        if reply is not None and reply.result is not None:
            return reply.result.finish_reason
        return None

    return finish_reason


async def _gathered(events: AsyncIterator[ReplyEvent]) -> ReplyParts:
    parts = ReplyParts()
    async for event in events:
        parts.add(event)
        if event.final:
            break
    return parts


def _raise_failure(parts: ReplyParts, reply: ReplyStream | None) -> None:
    """A reply that failed answers with its failure's status (502 for the upstream's)."""
    if parts.error is None or parts.blocked:
        return
    result = reply.result if reply is not None else None
    status = result.http_status if result is not None and result.http_status >= 400 else 502
    raise ReplyFailed(
        str(parts.error.get("message") or "The reply failed."),
        status_code=status,
        code=str(parts.error.get("code") or "generation_failed"),
    )


@router.get("/models", summary="List the models you may use", responses=documented(Unauthorized))
async def list_models(caller: CallerDep, service: OpenAIServiceDep) -> ModelList:
    """The models the caller may use, in OpenAI's list shape."""
    return await service.list_models(caller)


@router.post(
    "/chat/completions",
    summary="Create a chat completion (JSON or streamed)",
    responses=documented(*COMPLETION_ERRORS),
)
async def create_chat_completion(
    request: Request,
    body: ChatCompletionRequest,
    caller: GenerationCallerDep,
    service: OpenAIServiceDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    """OpenAI's Chat Completions: the client's messages, answered through Parley's reply
    pipeline; `stream: true` answers `chat.completion.chunk` frames ending in `data: [DONE]`."""
    completion = await service.chat_completion(caller, body)
    events, reply = await service.start(
        caller, completion, idempotency_key=parse_key(idempotency_key)
    )
    headers = reply.headers if reply is not None else {}
    if body.stream:
        include_usage = body.stream_options is not None and body.stream_options.include_usage
        chunks = ChatCompletionStream(
            model=body.model, include_usage=include_usage, finish_reason=_finish_reason(reply)
        )
        return _event_stream(request, chunks.frames(events), headers)
    parts = await _gathered(events)
    _raise_failure(parts, reply)
    answer = chat_completion(parts, model=body.model, finish_reason=_finish_reason(reply)())
    return JSONResponse(answer, headers=headers)


@router.post(
    "/embeddings",
    summary="Create embeddings",
    responses=documented(Unauthorized, RateLimited, ModelNotFound, EmbeddingsFailed),
)
async def create_embeddings(
    body: EmbeddingRequest, caller: GenerationCallerDep, service: OpenAIServiceDep
) -> dict[str, Any]:
    """The configured embedding endpoint's vectors for `input` (EMBEDDING_BASE_URL)."""
    return await service.embeddings(caller, body)


@router.post(
    "/responses",
    summary="Create a response (the Responses API)",
    responses=documented(*COMPLETION_ERRORS, PreviousResponseNotFound),
)
async def create_response(
    request: Request,
    body: ResponsesRequest,
    caller: GenerationCallerDep,
    service: OpenAIServiceDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    """OpenAI's Responses API: `input` (a string or items), `instructions`,
    `previous_response_id`, function tools; stored unless `store: false`."""
    completion, conversation = await service.response_request(caller, body)
    events, reply = await service.start(
        caller, completion, idempotency_key=parse_key(idempotency_key)
    )
    headers = reply.headers if reply is not None else {}
    builder = ResponseBuilder(id=new_response_id(), model=body.model, body=body)

    async def on_end() -> None:
        if body.store:
            await service.store_response(caller, builder, conversation)

    if body.stream:
        return _event_stream(request, builder.events(events, on_end), headers)
    builder.parts = await _gathered(events)
    builder.end()
    _raise_failure(builder.parts, reply)
    await on_end()
    return JSONResponse(builder.response(), headers=headers)


@router.get(
    "/responses/{response_id}",
    summary="Get a stored response",
    responses=documented(Unauthorized, ResponseNotFound),
)
async def get_response(
    response_id: str, caller: CallerDep, service: OpenAIServiceDep
) -> dict[str, Any]:
    """A response stored earlier (`store`), as it was answered; another user's is 404."""
    return await service.get_response(caller, response_id)
