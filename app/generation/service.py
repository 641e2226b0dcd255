"""Replies in chats and stateless generations: validate, persist, then start a streaming run."""

import asyncio
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from app.chats.models import Chat, Message, Role
from app.chats.modes import get_mode
from app.chats.repository import MessageRepository
from app.chats.schemas import MessageRead
from app.chats.service import ChatService, ReplyContext
from app.core.config import Settings
from app.core.db import Database, utcnow
from app.core.errors import AppError
from app.core.metrics import Metrics
from app.generation.client import GenerationParams, ModelConfig, TextDelta, estimate_tokens
from app.generation.events import ReplyEvent
from app.generation.models import Generation
from app.generation.probe import UpstreamProbe
from app.generation.prompt import DEFAULT_REPLY_RESERVE, Turn, build_prompt, estimate_prompt
from app.generation.recorder import RowRecorder
from app.generation.registry import ModelRegistry, Providers
from app.generation.repository import reply_streaming_in_chat
from app.generation.runs import GenerationInProgress, GenerationRun, RunRegistry
from app.generation.schemas import GenerateRequest, GenerationRead
from app.generation.signals import StopBus
from app.generation.staleness import stale_after
from app.usage.repository import UsageRepository, settle_usage
from app.usage.service import UsageService
from app.users.models import User

logger = logging.getLogger("parley.generation")

TITLE_PROMPT = (
    "Write a short title (at most six words, no quotes, no trailing punctuation) for a chat "
    "that starts with this message:\n\n{message}"
)
TITLE_MAX_CHARS = 80


class InputTooLarge(AppError):
    status_code = 413
    code = "input_too_large"
    message = "The input is too long."


class InputBlocked(AppError):
    status_code = 422
    code = "input_blocked"
    message = "The input contains content this server does not accept."


@dataclass
class GenerationRuntime:
    """The app's generation machinery: models, providers on one HTTP client, running replies."""

    registry: ModelRegistry
    providers: Providers
    runs: RunRegistry
    metrics: Metrics
    probe: UpstreamProbe
    stops: StopBus
    stops_shared: bool
    http: httpx.AsyncClient
    background: set[asyncio.Task[None]]


class GenerationService:
    def __init__(
        self,
        *,
        session: AsyncSession,
        db: Database,
        settings: Settings,
        runtime: GenerationRuntime,
        chats: ChatService,
        messages: MessageRepository,
        usage: UsageService,
    ) -> None:
        self.session = session
        self.usage = usage
        self.db = db
        self.settings = settings
        self.runtime = runtime
        self.chats = chats
        self.messages = messages
        self._blocked = [re.compile(p, re.IGNORECASE) for p in settings.blocked_patterns]

    # --- guardrails --------------------------------------------------------------------------

    def check_input(self, text: str) -> None:
        if len(text) > self.settings.max_input_chars:
            raise InputTooLarge(
                f"The input is longer than {self.settings.max_input_chars} characters."
            )
        if any(pattern.search(text) for pattern in self._blocked):
            raise InputBlocked()

    def resolve_model(self, name: str | None, user: User, chat: Chat | None = None) -> ModelConfig:
        preferred = name or (chat.model if chat else None) or user.default_model
        return self.runtime.registry.resolve(preferred)

    # --- chat replies ------------------------------------------------------------------------

    async def send_message(
        self,
        user: User,
        chat: Chat,
        *,
        content: str,
        model: str | None = None,
        parent_id: uuid.UUID | None = None,
    ) -> GenerationRun:
        """Saves the user's message, then starts the assistant's reply."""
        self.check_input(content)
        config = self.resolve_model(model, user, chat)
        return await self._reserved(
            chat,
            lambda: self.chats.user_message_context(chat, content, parent_id),
            config,
            user,
        )

    async def edit_message(
        self, user: User, chat: Chat, message_id: uuid.UUID, *, content: str, model: str | None
    ) -> GenerationRun:
        """Adds the edited text as a sibling of the original user message and answers it."""
        self.check_input(content)
        config = self.resolve_model(model, user, chat)
        return await self._reserved(
            chat,
            lambda: self.chats.edit_context(chat, message_id, content),
            config,
            user,
        )

    async def regenerate(
        self, user: User, chat: Chat, message_id: uuid.UUID, *, model: str | None
    ) -> GenerationRun:
        """Answers the same user message again; the new reply is a sibling of the old one."""
        config = self.resolve_model(model, user, chat)
        return await self._reserved(
            chat, lambda: self.chats.regenerate_context(chat, message_id), config, user
        )

    async def stop(self, chat: Chat) -> bool:
        """Stops the chat's running reply, if any, on whichever worker runs it."""
        if await self.runtime.stops.stop(_chat_key(chat.id)):
            return True
        if not self.runtime.stops_shared:
            return False
        # Published to the other workers: report whether one of them holds a live reply.
        return await reply_streaming_in_chat(
            self.session, chat.id, fresh_after=utcnow() - stale_after(self.settings)
        )

    async def _reserved(
        self,
        chat: Chat,
        make_context: Callable[[], Awaitable[ReplyContext]],
        config: ModelConfig,
        user: User,
    ) -> GenerationRun:
        """Starts a reply to `make_context()`'s user message, one reply per chat at a time."""
        key = _chat_key(chat.id)
        self.runtime.runs.reserve(key)
        try:
            await self.usage.lock(user)
            fresh_after = utcnow() - stale_after(self.settings)
            if await reply_streaming_in_chat(
                self.session, chat.id, fresh_after=fresh_after, lock=True
            ):
                raise GenerationInProgress()
            run = await self._start_reply(user, chat, await make_context(), config)
        except BaseException:
            self.runtime.runs.release(key)
            raise
        return self.runtime.runs.add(run)

    async def _start_reply(
        self, user: User, chat: Chat, context: ReplyContext, config: ModelConfig
    ) -> GenerationRun:
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
        # Streaming is the exception to "the request commits once": the user's message must be
        # safe before the upstream hears of it, and no connection may stay checked out while
        # tokens flow. Everything after this point saves in its own short transactions.
        await self.session.commit()
        run = GenerationRun(
            key=_chat_key(chat.id),
            provider=self.runtime.providers.for_model(config),
            model=config,
            messages=prompt,
            params=GenerationParams(
                temperature=chat.temperature if chat.temperature is not None else user.temperature,
                top_p=chat.top_p,
                max_tokens=chat.max_tokens,
            ),
            recorder=RowRecorder(
                self.db, Message, assistant.id, usage_id=usage.id, serialize=_message_json
            ),
            headers=quota.headers(),
            start=start,
            checkpoint_seconds=self.settings.stream_checkpoint_seconds,
            metrics=self.runtime.metrics,
        )
        if first_exchange and self.settings.auto_title:
            user_text = parent.content
            run.on_saved.append(
                lambda result: (
                    self._spawn(self._title_chat(user.id, chat.id, user_text, config))
                    if result.status == "complete"
                    else None
                )
            )
        return run

    # --- titles and summaries ----------------------------------------------------------------

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coroutine)
        self.runtime.background.add(task)
        task.add_done_callback(self.runtime.background.discard)

    async def complete_text(
        self, config: ModelConfig, messages: list[dict[str, str]], *, max_tokens: int
    ) -> str:
        """A whole reply at once (titles, summaries)."""
        provider = self.runtime.providers.for_model(config)
        parts: list[str] = []
        params = GenerationParams(max_tokens=max_tokens, temperature=0.3)
        async with aclosing(provider.stream(config, messages, params)) as stream:
            async for event in stream:
                if isinstance(event, TextDelta):
                    parts.append(event.text)
        return "".join(parts).strip()

    async def _title_chat(
        self, user_id: uuid.UUID, chat_id: uuid.UUID, first_message: str, config: ModelConfig
    ) -> None:
        """Names a new chat after its first exchange, in the background; falls back to its words."""
        title = _fallback_title(first_message)
        used: tuple[int, int] | None = None
        if config.provider != "echo":
            try:
                prompt = [
                    {"role": "user", "content": TITLE_PROMPT.format(message=first_message[:2000])}
                ]
                generated = await asyncio.wait_for(
                    self.complete_text(config, prompt, max_tokens=24), timeout=30
                )
                used = (estimate_prompt(prompt), estimate_tokens(generated))
                title = _clean_title(generated) or title
            except Exception as exc:
                logger.warning(
                    "automatic title failed", extra={"chat_id": str(chat_id), "error": repr(exc)}
                )
        async with self.db.transaction() as session:
            chat = await session.get(Chat, chat_id)
            if chat is not None and chat.title is None:
                chat.title = title
            if used is not None:
                await UsageService(usage=UsageRepository(session), settings=self.settings).record(
                    user_id,
                    model=config.name,
                    kind="title",
                    prompt_tokens=used[0],
                    completion_tokens=used[1],
                    estimated=True,
                )

    async def summarize(self, user: User, chat: Chat, *, model: str | None) -> str:
        """Summarizes the chat's current thread and stores the summary on the chat."""
        config = self.resolve_model(model, user, chat)
        thread = await self.messages.thread_rows(chat.id)
        if not thread:
            return ""
        transcript = "\n\n".join(f"{m.role}: {m.content}" for m in thread if m.content)
        prompt = build_prompt(
            system_prompt=get_mode("summarize").render({}),
            history=[Turn("user", transcript[-self.settings.max_input_chars * 4 :])],
            context_length=config.context_length,
            max_tokens=512,
        )
        chat_id = chat.id
        prompt_tokens = estimate_prompt(prompt)
        await self.usage.lock(user)
        usage, _quota = await self.usage.reserve(
            user,
            model=config.name,
            kind="summary",
            prompt_tokens=prompt_tokens,
            completion_tokens=512,
        )
        await self.session.commit()  # no connection held while the model writes
        summary = ""
        try:
            summary = await self.complete_text(config, prompt, max_tokens=512)
        finally:
            async with self.db.transaction() as session:
                await settle_usage(
                    session,
                    usage.id,
                    prompt_tokens=prompt_tokens,
                    completion_tokens=estimate_tokens(summary),
                    estimated=True,
                )
                stored = await session.get(Chat, chat_id)
                if stored is not None and summary:
                    stored.summary = summary
        return summary

    # --- stateless generation ----------------------------------------------------------------

    async def generate(self, user: User, body: GenerateRequest) -> GenerationRun:
        """Runs a mode over a prompt and keeps the request in the user's history."""
        self.check_input(body.prompt)
        config = self.resolve_model(body.model, user)
        mode = get_mode(body.mode)
        params = mode.validate_params(body.params)
        prompt = build_prompt(
            system_prompt=mode.render(params),
            history=[Turn("user", body.prompt)],
            context_length=config.context_length,
            max_tokens=body.max_tokens,
        )
        sampling = GenerationParams(
            temperature=body.temperature if body.temperature is not None else user.temperature,
            top_p=body.top_p,
            max_tokens=body.max_tokens,
        )
        await self.usage.lock(user)
        generation = Generation(
            user_id=user.id,
            mode=body.mode,
            params=params.model_dump(mode="json"),
            prompt=body.prompt,
            settings=sampling.as_body(),
            model=config.name,
            status="streaming",
        )
        self.session.add(generation)
        await self.session.flush()
        usage, quota = await self.usage.reserve(
            user,
            model=config.name,
            kind="generate",
            prompt_tokens=estimate_prompt(prompt),
            completion_tokens=body.max_tokens or DEFAULT_REPLY_RESERVE,
            generation_id=generation.id,
        )
        await self.session.commit()
        run = GenerationRun(
            key=f"generation:{generation.id}",
            provider=self.runtime.providers.for_model(config),
            model=config,
            messages=prompt,
            params=sampling,
            recorder=RowRecorder(
                self.db, Generation, generation.id, usage_id=usage.id, serialize=_generation_json
            ),
            headers=quota.headers(),
            start=ReplyEvent("start", {"generation_id": str(generation.id), "model": config.name}),
            checkpoint_seconds=self.settings.stream_checkpoint_seconds,
            metrics=self.runtime.metrics,
        )
        self.runtime.runs.reserve(run.key)
        return self.runtime.runs.add(run)


def _chat_key(chat_id: uuid.UUID) -> str:
    return f"chat:{chat_id}"


def _message_json(message: Row[Any]) -> dict[str, Any]:
    return MessageRead.model_validate(message).model_dump(mode="json")


def _generation_json(generation: Row[Any]) -> dict[str, Any]:
    return GenerationRead.model_validate(generation).model_dump(mode="json")


def _fallback_title(text: str) -> str:
    words = text.split()
    title = " ".join(words[:8])
    return (title[:TITLE_MAX_CHARS] + ("…" if len(words) > 8 else "")) or "New chat"


def _clean_title(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line.strip(" \"'`*#.").strip()[:TITLE_MAX_CHARS]
