"""The built-in `echo` model: a deterministic local reply, so the app runs without an upstream.

It is a provider behind the same interface as the OpenAI one, labelled as built in by
/api/models, and used only when no upstream is configured or when asked for by name.
"""

import asyncio
import re
from collections.abc import AsyncGenerator

from app.generation.upstream.types import (
    Finish,
    ModelConfig,
    SamplingParams,
    TextDelta,
    UpstreamEvent,
)


class EchoProvider:
    """The built-in `echo` model: the same interface as an upstream, no server behind it."""

    def __init__(self, *, delay: float = 0.02):
        self._delay = delay

    async def list_models(self, model: ModelConfig) -> list[str]:
        return ["echo"]

    async def stream(
        self, model: ModelConfig, messages: list[dict[str, str]], params: SamplingParams
    ) -> AsyncGenerator[UpstreamEvent, None]:
        """Reply "Echo: <last user message>", one word at a time at a model-like pace."""
        prompt = next(
            (m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), ""
        )
        reply = f"Echo: {prompt.strip()}" if prompt.strip() else "Echo: (empty message)"
        # Each token is a word with the whitespace after it, so the tokens join back to the reply.
        tokens = re.findall(r"\S+\s*", reply)
        reason = "stop"
        if params.max_tokens is not None and len(tokens) > params.max_tokens:
            tokens, reason = tokens[: params.max_tokens], "length"
        for token in tokens:
            await asyncio.sleep(self._delay)
            yield TextDelta(token)
        # No Usage event: like llama.cpp, the counts are left to the caller's estimate, which
        # is then flagged as such.
        yield Finish(reason)
