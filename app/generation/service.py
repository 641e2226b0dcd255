"""Starting replies: in chats (send, edit, regenerate, stop) and stateless (POST /api/generate).

Each request validates its input, persists the user's side and a usage reservation, commits,
and only then starts a ReplyStream (reply_stream.py), which calls the upstream and saves the
reply as it goes (reply_saver.py).
"""

import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import AwareDatetime
from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from app.chats.models import Chat, Message, Role
from app.chats.modes import get_mode
from app.chats.schemas import ChatCreate, MessageRead
from app.chats.service import ChatService, ReplyContext
from app.core.config import Settings
from app.core.cursor import Cursor
from app.core.db import Database, utcnow
from app.generation.errors import InputBlocked, InputTooLarge, ReplyInProgress
from app.generation.models import Generation
from app.generation.prompt import DEFAULT_REPLY_RESERVE, Turn, build_prompt, estimate_prompt
from app.generation.reply_events import ReplyEvent
from app.generation.reply_saver import ReplySaver
from app.generation.reply_stream import ReplyStream
from app.generation.repository import GenerationRepository, ReplyRepository
from app.generation.runtime import GenerationRuntime
from app.generation.schemas import GenerateRequest, GenerationPage, GenerationRead, ModelRead
from app.generation.stale_replies import stale_after
from app.generation.summaries import SummaryService
from app.generation.upstream.types import ModelConfig, SamplingParams
from app.usage.service import Quota, UsageService
from app.users.models import User


@dataclass(kw_only=True)
class GenerationService:
    session: AsyncSession
    db: Database
    settings: Settings
    runtime: GenerationRuntime
    chats: ChatService
    usage: UsageService
    replies: ReplyRepository
    generations: GenerationRepository
    summaries: SummaryService
    _blocked: list[re.Pattern[str]] = field(init=False)

    def __post_init__(self) -> None:
        self._blocked = [re.compile(p, re.IGNORECASE) for p in self.settings.blocked_patterns]

    # --- guardrails --------------------------------------------------------------------------

    def _check_input(self, text: str) -> None:
        if len(text) > self.settings.max_input_chars:
            raise InputTooLarge(
                f"The input is longer than {self.settings.max_input_chars} characters."
            )
        if any(pattern.search(text) for pattern in self._blocked):
            raise InputBlocked()

    def _chat_model(self, name: str | None, user: User, chat: Chat) -> ModelConfig:
        return self.runtime.registry.resolve(name, chat.model, user.default_model)

    # --- chat replies ------------------------------------------------------------------------

    async def send_message(
        self,
        user: User,
        chat: Chat,
        *,
        content: str,
        model: str | None = None,
        parent_id: uuid.UUID | None = None,
    ) -> ReplyStream:
        """Saves the user's message, then starts the assistant's reply."""
        self._check_input(content)
        config = self._chat_model(model, user, chat)
        return await self._reserved(
            chat,
            lambda: self.chats.user_message_context(chat, content, parent_id),
            config,
            user,
        )

    async def start_chat(self, user: User, data: ChatCreate, *, content: str) -> ReplyStream:
        """Creates a chat and sends its first message. A refused send (input, model, quota)
        rolls the chat back with the request; a reply that fails before its first token deletes
        it (ReplySaver.discard_chat): either way no chat is left without its exchange."""
        self._check_input(content)
        chat = await self.chats.create_chat(user, data)
        config = self._chat_model(None, user, chat)
        return await self._reserved(
            chat,
            lambda: self.chats.user_message_context(chat, content),
            config,
            user,
            new_chat=True,
        )

    async def edit_message(
        self, user: User, chat: Chat, message_id: uuid.UUID, *, content: str, model: str | None
    ) -> ReplyStream:
        """Adds the edited text as a sibling of the original user message and answers it."""
        self._check_input(content)
        config = self._chat_model(model, user, chat)
        return await self._reserved(
            chat,
            lambda: self.chats.edit_context(chat, message_id, content),
            config,
            user,
        )

    async def regenerate(
        self, user: User, chat: Chat, message_id: uuid.UUID, *, model: str | None
    ) -> ReplyStream:
        """Answers the same user message again; the new reply is a sibling of the old one."""
        config = self._chat_model(model, user, chat)
        return await self._reserved(
            chat, lambda: self.chats.regenerate_context(chat, message_id), config, user
        )

    async def stop(self, chat: Chat) -> bool:
        """Stops the chat's streaming reply, if any, on whichever worker streams it."""
        if await self.runtime.stops.stop(_chat_key(chat.id)):
            return True
        if not self.runtime.stops_shared:
            return False
        # Published to the other workers: report whether one of them holds a live reply.
        return await self.replies.streaming_in_chat(
            chat.id, fresh_after=utcnow() - stale_after(self.settings)
        )

    async def _reserved(
        self,
        chat: Chat,
        make_context: Callable[[], Awaitable[ReplyContext]],
        config: ModelConfig,
        user: User,
        *,
        new_chat: bool = False,
    ) -> ReplyStream:
        """Starts a reply to `make_context()`'s user message, one reply per chat at a time."""
        key = _chat_key(chat.id)
        self.runtime.replies.reserve(key)
        try:
            await self.usage.lock(user)
            fresh_after = utcnow() - stale_after(self.settings)
            if await self.replies.streaming_in_chat(chat.id, fresh_after=fresh_after, lock=True):
                raise ReplyInProgress()
            reply = await self._start_reply(
                user, chat, await make_context(), config, new_chat=new_chat
            )
        except BaseException:
            self.runtime.replies.release(key)
            raise
        return self.runtime.replies.add(reply)

    async def _start_reply(
        self,
        user: User,
        chat: Chat,
        context: ReplyContext,
        config: ModelConfig,
        *,
        new_chat: bool = False,
    ) -> ReplyStream:
        parent, thread = context.prompt, context.thread
        first_exchange = sum(m.role == Role.USER for m in thread) == 1 and chat.title is None
        # The chat's own prompt wins; in plain chats the user's preferred prompt replaces the
        # generic assistant one; other modes need their own.
        system_prompt = (
            chat.system_prompt
            or (user.system_prompt if chat.mode == "chat" else None)
            or get_mode(chat.mode).render(chat.mode_params)
        )
        prompt = build_prompt(
            system_prompt=system_prompt,
            history=[Turn(m.role, m.content) for m in thread],
            context_length=config.context_length,
            max_tokens=chat.max_tokens,
        )
        # Written together with the user message (and the usage record) in one flush.
        assistant = self.chats.new_reply(chat, parent, model=config.name)
        usage, quota = await self.usage.reserve(
            user,
            model=config.name,
            kind="chat",
            prompt_tokens=estimate_prompt(prompt),
            completion_tokens=chat.max_tokens or DEFAULT_REPLY_RESERVE,
            message_id=assistant.id,
        )
        start = ReplyEvent(
            "start",
            {
                "chat_id": str(chat.id),
                "user_message": MessageRead.model_validate(parent).model_dump(mode="json"),
                "assistant_message_id": str(assistant.id),
                "model": config.name,
            },
        )
        reply = await self._reply_stream(
            _chat_key(chat.id),
            config,
            prompt,
            SamplingParams(
                temperature=chat.temperature if chat.temperature is not None else user.temperature,
                top_p=chat.top_p,
                max_tokens=chat.max_tokens,
            ),
            saver=ReplySaver(
                self.db,
                Message,
                assistant.id,
                usage_id=usage.id,
                serialize=_message_json,
                discard_chat=chat.id if new_chat else None,
            ),
            quota=quota,
            start=start,
        )
        if first_exchange and self.settings.auto_title:
            user_text = parent.content
            reply.on_saved.append(
                lambda result: (
                    self.summaries.title_later(user.id, chat.id, user_text, config)
                    if result.status == "complete"
                    else None
                )
            )
        return reply

    async def _reply_stream(
        self,
        key: str,
        config: ModelConfig,
        prompt: list[dict[str, str]],
        params: SamplingParams,
        *,
        saver: ReplySaver,
        quota: Quota,
        start: ReplyEvent,
    ) -> ReplyStream:
        """Commits what the request wrote, then makes the reply (the caller starts it)."""
        # Streaming is the exception to "the request commits once": the user's message must be
        # safe before the upstream hears of it, and no connection may stay checked out while
        # tokens flow. Everything after this point saves in its own short transactions.
        await self.session.commit()
        return ReplyStream(
            key=key,
            provider=self.runtime.providers.for_model(config),
            model=config,
            messages=prompt,
            params=params,
            saver=saver,
            headers=quota.headers(),
            start=start,
            checkpoint_seconds=self.settings.stream_checkpoint_seconds,
            metrics=self.runtime.metrics,
        )

    # --- stateless generation ----------------------------------------------------------------

    async def generate(self, user: User, body: GenerateRequest) -> ReplyStream:
        """Runs a mode over a prompt and keeps the request in the user's history."""
        self._check_input(body.prompt)
        config = self.runtime.registry.resolve(body.model, user.default_model)
        mode = get_mode(body.mode)
        params = mode.validate_params(body.params)
        prompt = build_prompt(
            system_prompt=mode.render(params),
            history=[Turn("user", body.prompt)],
            context_length=config.context_length,
            max_tokens=body.max_tokens,
        )
        sampling = SamplingParams(
            temperature=body.temperature if body.temperature is not None else user.temperature,
            top_p=body.top_p,
            max_tokens=body.max_tokens,
        )
        await self.usage.lock(user)
        generation = await self.generations.add(
            Generation(
                user_id=user.id,
                mode=body.mode,
                params=params.model_dump(mode="json"),
                prompt=body.prompt,
                settings=sampling.as_body(),
                model=config.name,
                status="streaming",
            )
        )
        usage, quota = await self.usage.reserve(
            user,
            model=config.name,
            kind="generate",
            prompt_tokens=estimate_prompt(prompt),
            completion_tokens=body.max_tokens or DEFAULT_REPLY_RESERVE,
            generation_id=generation.id,
        )
        reply = await self._reply_stream(
            f"generation:{generation.id}",
            config,
            prompt,
            sampling,
            saver=ReplySaver(
                self.db, Generation, generation.id, usage_id=usage.id, serialize=_generation_json
            ),
            quota=quota,
            start=ReplyEvent("start", {"generation_id": str(generation.id), "model": config.name}),
        )
        self.runtime.replies.reserve(reply.key)
        return self.runtime.replies.add(reply)

    async def list_generations(
        self, user: User, *, limit: int, cursor: str | None
    ) -> GenerationPage:
        """The user's stateless generations, newest first, a page at a time."""
        position = GenerationCursor.decode(cursor) if cursor else None
        after = (position.t, position.i) if position else None
        rows = await self.generations.page(user.id, limit=limit + 1, after=after)
        items = [GenerationRead.model_validate(row) for row in rows[:limit]]
        last = rows[limit - 1] if len(rows) > limit else None
        next_cursor = GenerationCursor(t=last.created_at, i=last.id).encode() if last else None
        return GenerationPage(items=items, next_cursor=next_cursor)

    # --- models ------------------------------------------------------------------------------

    def list_models(self) -> list[ModelRead]:
        """Every model a chat or request may name; `built_in` marks the local echo model."""
        registry = self.runtime.registry
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


class GenerationCursor(Cursor):
    k: Literal["generations"] = "generations"
    t: AwareDatetime
    i: uuid.UUID


def _chat_key(chat_id: uuid.UUID) -> str:
    # Also the key stop signals carry between workers: keep it stable.
    return f"chat:{chat_id}"


def _message_json(message: Row[Any]) -> dict[str, Any]:
    return MessageRead.model_validate(message).model_dump(mode="json")


def _generation_json(generation: Row[Any]) -> dict[str, Any]:
    return GenerationRead.model_validate(generation).model_dump(mode="json")
