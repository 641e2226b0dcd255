"""Retrieval in a chat reply: the hook a ReplyStream runs before it calls the upstream.

It rewrites a follow-up into a standalone query through the chat's model (RAG_QUERY_REWRITE),
retrieves the best chunks of the chat's collections (app/knowledge/retrieval.py: the query
embedded once, one search per index), saves them as the reply's sources, puts them in the
prompt as quoted data (through the guardrails' untrusted-text checks: personal data redacted or
left out, injected instructions flagged), and sends the `sources` event before the first delta.
What the user wrote goes to the rewrite and the embedding endpoint redacted, as it goes to the
chat's model. It runs in the
reply's task, with its own short transactions: the request's connection is long released.
"""

import logging
import uuid
from collections.abc import Sequence
from contextlib import aclosing

from sqlalchemy import update

from app.chats.models import Message
from app.core.config import Settings
from app.core.db import Database
from app.generation.prompt import estimate_tokens
from app.generation.reply_events import ReplyEvent
from app.generation.reply_stream import PromptHook
from app.generation.upstream.types import (
    ChatMessage,
    ModelConfig,
    Provider,
    SamplingParams,
    TextDelta,
)
from app.guardrails.pipeline import GuardrailPipeline, UntrustedText
from app.guardrails.recorder import EventContext
from app.knowledge.retrieval import context_block
from app.knowledge.runtime import KnowledgeRuntime
from app.knowledge.schemas import SearchHit

logger = logging.getLogger("parley.generation")

REWRITE_PROMPT = (
    "Rewrite the user's last message as one standalone search query for their documents, "
    "resolving what it refers to from the conversation. Answer with the query only."
)
REWRITE_TURNS = 6
REWRITE_TURN_CHARS = 1000
REWRITE_MAX_TOKENS = 64
MAX_QUERY_CHARS = 500


async def rewrite_query(
    provider: Provider, config: ModelConfig, history: Sequence[tuple[str, str]], question: str
) -> str | None:
    """A follow-up made standalone by the chat's model, from the last few turns."""
    turns = "\n".join(
        f"{role}: {content[:REWRITE_TURN_CHARS]}" for role, content in history[-REWRITE_TURNS:]
    )
    messages: list[ChatMessage] = [
        {"role": "system", "content": REWRITE_PROMPT},
        {"role": "user", "content": f"Conversation:\n{turns}\n\nLast message: {question}"},
    ]
    params = SamplingParams(temperature=0.0, max_tokens=REWRITE_MAX_TOKENS)
    parts: list[str] = []
    async with aclosing(provider.stream(config, messages, params)) as stream:
        async for event in stream:
            if isinstance(event, TextDelta):
                parts.append(event.text)
    lines = [line.strip() for line in "".join(parts).strip().splitlines() if line.strip()]
    return lines[0].strip("\"'")[:MAX_QUERY_CHARS] if lines else None


def retrieval_hook(
    *,
    knowledge: KnowledgeRuntime,
    db: Database,
    settings: Settings,
    provider: Provider,
    config: ModelConfig,
    user_id: uuid.UUID,
    collection_ids: Sequence[uuid.UUID],
    question: str,
    history: Sequence[tuple[str, str]],
    reply_id: uuid.UUID,
    budget_tokens: int,
    guardrails: GuardrailPipeline,
    mode: str,
    chat_id: uuid.UUID,
) -> PromptHook:
    """The prepare hook of a reply in a chat that names collections."""
    can_rewrite = settings.rag_query_rewrite and bool(history) and config.provider != "echo"
    question = guardrails.redact_for_upstream(question, mode=mode)
    history = [
        (role, guardrails.redact_for_upstream(content, mode=mode) if role == "user" else content)
        for role, content in history
    ]
    context = EventContext(user_id=user_id, chat_id=chat_id, message_id=reply_id)

    async def checked(hits: list[SearchHit]) -> tuple[list[SearchHit], set[int]]:
        """The chunks as the prompt may quote them, and which of them carry instructions."""
        results = await guardrails.check_untrusted(
            [UntrustedText(hit.text, "retrieval", hit.name) for hit in hits],
            mode=mode,
            context=context,
            on_block="drop",
        )
        kept = [
            (hit.model_copy(update={"text": result.text}), result.flagged)
            for hit, result in zip(hits, results, strict=True)
            if not result.dropped
        ]
        return [hit for hit, _ in kept], {i for i, (_, flagged) in enumerate(kept) if flagged}

    async def prepare(messages: list[ChatMessage]) -> tuple[list[ChatMessage], ReplyEvent | None]:
        retrieved = await knowledge.retriever.retrieve(
            user_id=user_id,
            collection_ids=collection_ids,
            question=question,
            top_k=settings.rag_top_k,
            rewrite=(lambda: rewrite_query(provider, config, history, question))
            if can_rewrite
            else None,
        )
        hits, flagged = await checked(list(retrieved.hits))
        # What fits in the room the prompt left; the best chunks first.
        while hits and estimate_tokens(context_block(hits, flagged)) > budget_tokens:
            hits.pop()
        retrieved.hits = hits
        sources = [source.model_dump(mode="json") for source in retrieved.sources()]
        async with db.transaction() as session:
            await session.execute(
                update(Message).where(Message.id == reply_id).values(sources=sources or None)
            )
        if hits:
            messages = _with_context(messages, context_block(hits, flagged))
        event = ReplyEvent(
            "sources",
            {"sources": sources, "query": retrieved.query, "retrieval": retrieved.retrieval},
        )
        return messages, event

    return prepare


def _with_context(messages: list[ChatMessage], block: str) -> list[ChatMessage]:
    """The block goes into the last user message, before the user's words."""
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if message["role"] != "user":
            continue
        content = message["content"]
        if isinstance(content, list):
            content = [{"type": "text", "text": block}, *content]
        else:
            content = f"{block}\n\n{content}"
        return [*messages[:index], {**message, "content": content}, *messages[index + 1 :]]
    return messages
