"""The built-in `echo` model: a deterministic local reply, so the app runs without an upstream.

It is a provider behind the same interface as the OpenAI one, labelled as built in by
/api/models, and used only when no upstream is configured or when asked for by name.
"""

import asyncio
import re
from collections.abc import AsyncGenerator
from typing import Any

from app.generation.upstream.types import (
    ChatMessage,
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
        self, model: ModelConfig, messages: list[ChatMessage], params: SamplingParams
    ) -> AsyncGenerator[UpstreamEvent, None]:
        """Reply "Echo: <last user message>", one word at a time at a model-like pace; with
        images, how many it was sent."""
        content = next(
            (m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), ""
        )
        prompt, images = _text_and_images(content)
        reply = f"Echo: {prompt.strip()}" if prompt.strip() else "Echo: (empty message)"
        if images:
            reply += f" ({images} image{'s' if images != 1 else ''})"
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


def _text_and_images(content: str | list[dict[str, Any]]) -> tuple[str, int]:
    """A message's text (for content parts, the last text part: the user's own words) and
    how many images it has."""
    if isinstance(content, str):
        return content, 0
    texts = [str(part.get("text", "")) for part in content if part.get("type") == "text"]
    images = sum(part.get("type") == "image_url" for part in content)
    return (texts[-1] if texts else ""), images
