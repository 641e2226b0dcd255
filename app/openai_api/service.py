"""The /v1 surface's rules: which models a caller sees, how an OpenAI request becomes a reply
request (app/generation/requests.py: `Completion`), stored responses, embeddings.

Replies go through GenerationService.reply(), the one way in for every reply, so quotas, the
guardrails, usage, metrics, cancellation and Idempotency-Key apply as they do to chats."""

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

from app.chats.service import ChatService
from app.core.config import Settings
from app.core.db import Database
from app.core.errors import AppError
from app.core.uow import UnitOfWork, unit_of_work
from app.generation.parts import GenerationParts
from app.generation.prompt import estimate_tokens
from app.generation.reply_events import ReplyEvent
from app.generation.reply_stream import ReplyStream
from app.generation.requests import Completion
from app.generation.resume import ReplyResumer, SavedReply
from app.generation.service import GenerationService
from app.generation.upstream.types import ModelConfig
from app.groups.access import ModelPermit
from app.keys.dependencies import Caller
from app.knowledge.errors import EmbeddingFailed
from app.openai_api.errors import (
    InvalidParameter,
    ModelNotFound,
    PreviousResponseNotFound,
    ResponseNotFound,
    UnsupportedParameter,
)
from app.openai_api.models import StoredResponse
from app.openai_api.repository import ResponseRepository
from app.openai_api.responses import (
    ResponseBuilder,
    chat_tools,
    input_messages,
    parse_response_id,
)
from app.openai_api.schemas import (
    ChatCompletionRequest,
    EmbeddingRequest,
    ModelList,
    ModelObject,
    ParleyExtension,
    ResponsesRequest,
)
from app.usage.repository import UsageRepository
from app.usage.service import UsageService

# Fields of a chat completion request that are Parley's to set, never passed through.
_OWN_FIELDS = frozenset(
    {"model", "messages", "stream", "stream_options", "n", "parley", "max_completion_tokens"}
)
_PASSED_FIELDS = ("tools", "tool_choice", "parallel_tool_calls", "response_format")


class EmbeddingsFailed(AppError):
    status_code = 502
    code = "embeddings_failed"
    message = "The embedding endpoint failed."


@dataclass(kw_only=True)
class OpenAIService:
    uow: UnitOfWork
    db: Database
    settings: Settings
    parts: GenerationParts
    generation: GenerationService
    chats: ChatService
    resumer: ReplyResumer

    def __post_init__(self) -> None:
        self.responses = self.uow.get(ResponseRepository)

    # --- models ------------------------------------------------------------------------------

    async def _permit(self, caller: Caller) -> ModelPermit:
        """The models the caller's user may not use (restricted to groups they are not in)."""
        return await self.generation.access.permit(caller.user)

    async def list_models(self, caller: Caller) -> ModelList:
        """The models the caller may use: chat models, then the embedding model if any; a
        model restricted to groups the user is not in, or outside the key's list, is left out."""
        permit = await self._permit(caller)
        names = [model.name for model in self.parts.registry.visible(permit)]
        embedding = self.settings.embedding_model
        configured = self.settings.embedding_base_url or self.settings.embedding_deployments
        if configured and permit.allows(embedding):
            names.append(embedding)
        return ModelList(
            data=[ModelObject(id=name) for name in dict.fromkeys(names) if caller.may_use(name)]
        )

    async def chat_model(self, caller: Caller, name: str) -> ModelConfig:
        """The chat model named, if the caller may use it; 404 model_not_found otherwise (a
        restricted model as one that does not exist)."""
        permit = await self._permit(caller)
        model = next((m for m in self.parts.registry.visible(permit) if m.name == name), None)
        if model is None or not caller.may_use(name):
            raise ModelNotFound(name)
        return model

    # --- replies ------------------------------------------------------------------------------

    async def _extension(self, caller: Caller, parley: ParleyExtension | None) -> dict[str, Any]:
        if parley is None:
            return {}
        found: dict[str, Any] = {"collection_ids": parley.collection_ids}
        if parley.chat_id is not None:  # another user's chat is 404, as everywhere
            found["chat"] = await self.chats.get_owned_chat(caller.user, parley.chat_id)
        return found

    async def chat_completion(self, caller: Caller, body: ChatCompletionRequest) -> Completion:
        """The reply request of a chat completion; 400 naming `param` for what Parley cannot
        honour, 404 for a model the caller may not use."""
        if body.n is not None and body.n > 1:
            raise UnsupportedParameter("n", "n > 1 is not supported: ask for one choice.")
        model = await self.chat_model(caller, body.model)
        extra = {k: v for k, v in (body.model_extra or {}).items() if k not in _OWN_FIELDS}
        for name in _PASSED_FIELDS:
            value = getattr(body, name)
            if value is not None:
                extra[name] = value
        if body.stream_options is not None:
            extra["stream_options"] = body.stream_options.model_dump(exclude_none=True)
        for number, message in enumerate(body.messages):
            if message.role == "tool" and not message.tool_call_id:
                raise InvalidParameter(
                    f"messages[{number}].tool_call_id", "A tool message needs its tool_call_id."
                )
        return Completion(
            model=model.name,
            messages=[message.upstream() for message in body.messages],
            temperature=body.temperature,
            top_p=body.top_p,
            max_tokens=body.max_completion_tokens or body.max_tokens,
            extra=extra,
            api="chat.completions",
            **await self._extension(caller, body.parley),
        )

    async def start(
        self, caller: Caller, request: Completion, *, idempotency_key: str | None
    ) -> tuple[AsyncIterator[ReplyEvent], ReplyStream | None]:
        """Starts the reply (or finds the one an earlier attempt with the same key started):
        its events, and the live reply when it runs here."""
        outcome = await self.generation.reply(caller.user, request, idempotency_key=idempotency_key)
        if isinstance(outcome, ReplyStream):
            if idempotency_key is None and request.chat is None:
                # Nothing can rejoin it (no retry key, no chat): once its client is gone, the
                # upstream is stopped at once instead of after REPLY_RESUME_GRACE_SECONDS.
                outcome.on_disconnect = replace(outcome.on_disconnect, grace_seconds=0)
            return outcome.events(), outcome
        return self._rejoined(outcome), None

    async def _rejoined(self, reply: SavedReply) -> AsyncIterator[ReplyEvent]:
        async for event in self.resumer.events(reply, 0):
            yield event

    # --- responses ------------------------------------------------------------------------------

    async def response_request(
        self, caller: Caller, body: ResponsesRequest
    ) -> tuple[Completion, list[dict[str, Any]]]:
        """The reply request of a Responses API call, and the conversation it continues plus
        this turn's input (what a stored response keeps)."""
        model = await self.chat_model(caller, body.model)
        history: list[dict[str, Any]] = []
        if body.previous_response_id is not None:
            previous_id = parse_response_id(body.previous_response_id)
            previous = (
                await self.responses.get_owned(previous_id, caller.user.id)
                if previous_id is not None
                else None
            )
            if previous is None:
                raise PreviousResponseNotFound()
            history = list(previous.messages)
        conversation = history + input_messages(body)
        messages = list(conversation)
        if body.instructions:  # this turn only, as OpenAI does
            messages.insert(0, {"role": "system", "content": body.instructions})
        if not messages:
            raise InvalidParameter("input", "The input is empty.")
        extra = {k: v for k, v in (body.model_extra or {}).items() if k in ("seed", "top_k")}
        completion = Completion(
            model=model.name,
            messages=messages,
            temperature=body.temperature,
            top_p=body.top_p,
            max_tokens=body.max_output_tokens,
            extra={**extra, **chat_tools(body)},
            api="responses",
            **await self._extension(caller, body.parley),
        )
        return completion, conversation

    async def store_response(
        self, caller: Caller, builder: ResponseBuilder, conversation: list[dict[str, Any]]
    ) -> None:
        """Keeps a finished response (`store`), in a short transaction of its own: a stream
        holds no database connection while it runs."""
        row_id = parse_response_id(builder.id)
        assert row_id is not None
        async with unit_of_work(self.db) as uow:
            await uow.get(ResponseRepository).add(
                StoredResponse(
                    id=row_id,
                    user_id=caller.user.id,
                    model=builder.model,
                    status=builder.status,
                    body=builder.response(),
                    messages=[*conversation, builder.assistant_message()],
                )
            )

    async def get_response(self, caller: Caller, value: str) -> dict[str, Any]:
        """A stored response of the caller's; 404 for anything else."""
        row_id = parse_response_id(value)
        row = await self.responses.get_owned(row_id, caller.user.id) if row_id else None
        if row is None:
            raise ResponseNotFound()
        return dict(row.body)

    # --- embeddings ---------------------------------------------------------------------------

    async def embeddings(self, caller: Caller, body: EmbeddingRequest) -> dict[str, Any]:
        """The configured embedding endpoint's answer for the client's input."""
        client = self.parts.embeddings
        # Without an embedding endpoint no embedding model exists (GET /v1/models lists none).
        if (
            client is None
            or body.model != client.model
            or not caller.may_use(body.model)
            or not (await self._permit(caller)).allows(body.model)
        ):
            raise ModelNotFound(body.model)
        # Counted like a reply: the quota and the key's daily tokens are checked and the input's
        # likely tokens held before the call, settled with the endpoint's own count after it.
        usage = UsageService(
            usage=self.uow.get(UsageRepository),
            settings=self.settings,
            groups=self.generation.access,
        )
        await usage.lock(caller.user, api_key=caller.key)
        estimate = embedding_input_tokens(body.input)
        record, _quota = await usage.reserve(
            caller.user,
            model=body.model,
            kind="embedding",
            prompt_tokens=estimate,
            completion_tokens=0,
            api_key=caller.key,
        )
        await self.uow.commit()  # no connection held while the endpoint works
        try:
            answer = await client.create(body.model_dump(exclude_none=True))
        except EmbeddingFailed as exc:
            await self._settle_embedding(record.id, 0, estimated=False)
            raise EmbeddingsFailed(str(exc)) from exc
        counted = (answer.get("usage") or {}).get("prompt_tokens")
        if isinstance(counted, int) and counted >= 0:
            await self._settle_embedding(record.id, counted, estimated=False)
        else:
            await self._settle_embedding(record.id, estimate, estimated=True)
        return {**answer, "model": body.model}

    async def _settle_embedding(self, usage_id: uuid.UUID, tokens: int, *, estimated: bool) -> None:
        async with unit_of_work(self.db) as uow:
            await uow.get(UsageRepository).settle(
                usage_id, prompt_tokens=tokens, completion_tokens=0, estimated=estimated
            )


def embedding_input_tokens(value: str | list[str] | list[int] | list[list[int]]) -> int:
    """The tokens an embedding input likely holds: token arrays counted, text estimated."""
    items: list[Any] = [value] if isinstance(value, str) else list(value)
    if items and all(isinstance(item, int) for item in items):
        return len(items)  # one input given as token ids
    return sum(len(item) if isinstance(item, list) else estimate_tokens(item) for item in items)


def new_response_id() -> str:
    return f"resp_{uuid.uuid4().hex}"
