"""Retrieval in a chat reply: a stage that runs in the reply's task before the upstream call.

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
from collections.abc import Callable, Sequence
from contextlib import aclosing

from app.core.config import Settings
from app.core.db import Database
from app.generation.pipeline.stage import EmitEvent, ReplyPlan, Stage
from app.generation.prompt import DEFAULT_REPLY_RESERVE, estimate_tokens
from app.generation.reply_events import ReplyEvent
from app.generation.upstream.types import (
    ChatMessage,
    ModelConfig,
    Provider,
    SamplingParams,
    TextDelta,
    UpstreamCall,
)
from app.guardrails.pipeline import GuardrailPipeline, UntrustedText
from app.knowledge.parts import KnowledgeParts
from app.knowledge.retrieval import context_block
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


class Retrieval(Stage):
    """Retrieval from the message's collections, else the chat's; a chat with none (or a
    deployment without knowledge) skips it."""

    name = "retrieval"

    def __init__(
        self,
        *,
        knowledge: Callable[[], KnowledgeParts | None],
        db: Database,
        settings: Settings,
        guardrails: GuardrailPipeline,
    ) -> None:
        self.knowledge = knowledge
        self.db = db
        self.settings = settings
        self.guardrails = guardrails

    async def compose(self, plan: ReplyPlan) -> None:
        collection_ids = plan.collection_ids
        if collection_ids is None and plan.chat is not None:
            collection_ids = [uuid.UUID(value) for value in plan.chat.collection_ids or []]
        # A project's collections add to the chat's (or the message's own).
        collection_ids = list(
            dict.fromkeys([*(collection_ids or []), *plan.project_collection_ids])
        )
        if collection_ids and self.knowledge() is not None:
            plan.notes[self.name] = list(collection_ids)

    def wants_upstream_hook(self, plan: ReplyPlan) -> bool:
        return self.name in plan.notes

    async def before_upstream(self, plan: ReplyPlan, call: UpstreamCall, emit: EmitEvent) -> None:
        knowledge, guardrails, mode = self.knowledge(), self.guardrails, plan.mode
        assert knowledge is not None and plan.prompt is not None and plan.reply_id is not None
        redact = guardrails.redact_for_upstream
        question = redact(plan.content, mode=mode)
        history = [
            (e.role, redact(e.content, mode=mode) if e.role == "user" else e.content)
            for e in plan.history[:-1]
        ]
        config = plan.model
        can_rewrite = self.settings.rag_query_rewrite and bool(history)
        can_rewrite = can_rewrite and config.provider != "echo"
        provider = call.provider
        retrieved = await knowledge.retriever.retrieve(
            user_id=plan.user.id,
            collection_ids=plan.notes[self.name],
            question=question,
            top_k=self.settings.rag_top_k,
            rewrite=(lambda: rewrite_query(provider, config, history, question))
            if can_rewrite
            else None,
        )
        hits, flagged = await self._checked(plan, list(retrieved.hits))
        # What fits in the room the prompt left; the best chunks first.
        reserve = plan.max_tokens or DEFAULT_REPLY_RESERVE
        room = config.context_length - min(reserve, config.context_length // 2)
        budget = room - plan.prompt.tokens
        while hits and estimate_tokens(context_block(hits, flagged)) > budget:
            hits.pop()
        retrieved.hits = hits
        sources = [source.model_dump(mode="json") for source in retrieved.sources()]
        call.sources = sources  # saved with the reply's final save, not on the way to its start
        if hits:
            call.messages = _with_context(call.messages, context_block(hits, flagged))
        emit(
            ReplyEvent(
                "sources",
                {"sources": sources, "query": retrieved.query, "retrieval": retrieved.retrieval},
            )
        )

    async def _checked(
        self, plan: ReplyPlan, hits: list[SearchHit]
    ) -> tuple[list[SearchHit], set[int]]:
        """The chunks as the prompt may quote them, and which of them carry instructions."""
        results = await self.guardrails.check_untrusted(
            [UntrustedText(hit.text, "retrieval", hit.name) for hit in hits],
            mode=plan.mode,
            context=plan.events_context(message_id=plan.reply_id),
            on_block="drop",
        )
        kept = [
            (hit.model_copy(update={"text": result.text}), result.flagged)
            for hit, result in zip(hits, results, strict=True)
            if not result.dropped
        ]
        return [hit for hit, _ in kept], {i for i, (_, flagged) in enumerate(kept) if flagged}


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
