"""Replies written whole and never streamed to a client: chat titles and chat summaries."""

import asyncio
import logging
import re
import uuid
from collections.abc import Coroutine
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from app.chats.models import Chat
from app.chats.modes import get_mode
from app.chats.repository import ChatRepository, MessageRepository
from app.core.config import Settings
from app.core.db import Database
from app.core.uow import UnitOfWork, unit_of_work
from app.generation.parts import GenerationParts
from app.generation.prompt import Turn, build_prompt, estimate_prompt, estimate_tokens
from app.generation.upstream.types import ChatMessage, ModelConfig, SamplingParams, TextDelta
from app.groups.access import GroupAccess
from app.usage.repository import UsageRepository
from app.usage.service import UsageService
from app.users.models import User

logger = logging.getLogger("parley.generation")

TITLE_PROMPT = (
    "Write a short title (at most six words, no quotes, no trailing punctuation) for a chat "
    "that starts with this message:\n\n{message}"
)
TITLE_MAX_CHARS = 80
SUMMARY_MAX_TOKENS = 512


@dataclass(kw_only=True)
class SummaryService:
    uow: UnitOfWork
    db: Database
    settings: Settings
    runtime: GenerationParts
    usage: UsageService
    # The request's view of groups: which restricted models the user may use.
    access: GroupAccess

    def __post_init__(self) -> None:
        self.messages = self.uow.get(MessageRepository)

    async def complete_text(
        self, config: ModelConfig, messages: list[ChatMessage], *, max_tokens: int
    ) -> str:
        """A whole reply at once (titles, summaries)."""
        provider = self.runtime.providers.for_model(config)
        parts: list[str] = []
        params = SamplingParams(max_tokens=max_tokens, temperature=0.3)
        async with aclosing(provider.stream(config, messages, params)) as stream:
            async for event in stream:
                if isinstance(event, TextDelta):
                    parts.append(event.text)
        return "".join(parts).strip()

    # --- titles ------------------------------------------------------------------------------

    def title_later(
        self,
        user_id: uuid.UUID,
        chat_id: uuid.UUID,
        first_message: str,
        config: ModelConfig,
        *,
        generate: bool = True,
    ) -> None:
        """Names a new chat after its first exchange, in the background; without `generate`
        (a stopped or failed reply) from the message's first words, with no model call."""
        self._spawn(self._title_chat(user_id, chat_id, first_message, config, generate=generate))

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        async def job() -> None:
            await coroutine

        self.runtime.jobs.spawn("chat-title", job)

    async def _title_chat(
        self,
        user_id: uuid.UUID,
        chat_id: uuid.UUID,
        first_message: str,
        config: ModelConfig,
        *,
        generate: bool = True,
    ) -> None:
        """Asks the model for a title; falls back to the message's first words."""
        title = _fallback_title(first_message)
        used: tuple[int, int] | None = None
        if generate and config.provider != "echo":
            try:
                # What leaves Parley is redacted as chat messages are (PII_*).
                sent = self.runtime.guardrails.redact_for_upstream(first_message, mode="chat")
                prompt = [{"role": "user", "content": TITLE_PROMPT.format(message=sent[:2000])}]
                generated = await asyncio.wait_for(
                    self.complete_text(config, prompt, max_tokens=24), timeout=30
                )
                used = (estimate_prompt(prompt), estimate_tokens(generated))
                title = _clean_title(generated) or title
            except Exception as exc:
                logger.warning(
                    "automatic title failed", extra={"chat_id": str(chat_id), "error": repr(exc)}
                )
        async with unit_of_work(self.db) as uow:
            chat = await uow.get(ChatRepository).get(chat_id)
            if chat is not None and chat.title is None:
                chat.title = title
            if used is not None:
                await UsageService(usage=uow.get(UsageRepository), settings=self.settings).record(
                    user_id,
                    model=config.name,
                    kind="title",
                    prompt_tokens=used[0],
                    completion_tokens=used[1],
                    estimated=True,
                )

    # --- summaries ---------------------------------------------------------------------------

    async def summarize(self, user: User, chat: Chat, *, model: str | None) -> str:
        """Summarizes the chat's current thread and stores the summary on the chat."""
        config = self.runtime.registry.resolve(
            model, chat.model, user.default_model, permit=await self.access.permit(user)
        )
        thread = await self.messages.thread_rows(chat.id)
        if not thread:
            return ""
        redact = self.runtime.guardrails.redact_for_upstream
        transcript = "\n\n".join(
            f"{m.role}: {redact(m.content, mode=chat.mode) if m.role == 'user' else m.content}"
            for m in thread
            if m.content
        )
        prompt = build_prompt(
            system_prompt=get_mode("summarize").render({}),
            history=[Turn("user", transcript[-self.settings.max_input_chars * 4 :])],
            context_length=config.context_length,
            max_tokens=SUMMARY_MAX_TOKENS,
        )
        chat_id = chat.id
        prompt_tokens = prompt.tokens
        await self.usage.lock(user)
        usage, _quota = await self.usage.reserve(
            user,
            model=config.name,
            kind="summary",
            prompt_tokens=prompt_tokens,
            completion_tokens=SUMMARY_MAX_TOKENS,
        )
        await self.uow.commit()  # no connection held while the model writes
        summary = ""
        try:
            summary = await self.complete_text(
                config, prompt.messages, max_tokens=SUMMARY_MAX_TOKENS
            )
        finally:
            async with unit_of_work(self.db) as uow:
                await uow.get(UsageRepository).settle(
                    usage.id,
                    prompt_tokens=prompt_tokens,
                    completion_tokens=estimate_tokens(summary),
                    estimated=True,
                )
                stored = await uow.get(ChatRepository).get(chat_id)
                if stored is not None and summary:
                    stored.summary = summary
        return summary


# Markdown marks that a title must not carry: titles are plain text wherever they show.
_MARKDOWN_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_MARKDOWN_MARKS = re.compile(r"(^|\s)#{1,6}\s+|[*_`~]+|^>\s*")


def _plain(text: str) -> str:
    return _MARKDOWN_MARKS.sub(r"\1", _MARKDOWN_LINK.sub(r"\1", text))


def _fallback_title(text: str) -> str:
    words = _plain(text).split()
    title = " ".join(words[:8])
    return (title[:TITLE_MAX_CHARS] + ("…" if len(words) > 8 else "")) or "New chat"


def _clean_title(text: str) -> str:
    line = _plain(text.strip().splitlines()[0]) if text.strip() else ""
    return line.strip(" \"'`*#.").strip()[:TITLE_MAX_CHARS]
