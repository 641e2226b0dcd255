"""Builds the messages sent upstream (system prompt first, then as much history as fits), and
estimates what they and a reply cost in tokens."""

from collections.abc import Sequence
from dataclasses import dataclass

from app.generation.errors import PromptTooLong

# Chat templates add a few tokens of framing per message.
PER_MESSAGE_OVERHEAD = 4
# Room kept for the reply when the request does not bound it.
DEFAULT_REPLY_RESERVE = 512


@dataclass(frozen=True)
class Turn:
    role: str
    content: str


def estimate_tokens(text: str) -> int:
    """Rough token count for upstreams that report no usage: about four characters a token."""
    if not text:
        return 0
    return max(1, round(len(text) / 4))


def _cost(text: str) -> int:
    return estimate_tokens(text) + PER_MESSAGE_OVERHEAD


def build_prompt(
    *,
    system_prompt: str | None,
    history: Sequence[Turn],
    context_length: int,
    max_tokens: int | None,
) -> list[dict[str, str]]:
    """Keeps the system prompt and the newest turns that fit; drops the oldest first."""
    reserve = max_tokens or DEFAULT_REPLY_RESERVE
    budget = context_length - min(reserve, context_length // 2)
    messages: list[dict[str, str]] = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
        budget -= _cost(system_prompt)
    kept: list[dict[str, str]] = []
    for turn in reversed([t for t in history if t.content]):
        cost = _cost(turn.content)
        if cost > budget:
            break
        budget -= cost
        kept.append({"role": turn.role, "content": turn.content})
    if not kept and history:
        raise PromptTooLong()
    return messages + kept[::-1]


def estimate_prompt(messages: Sequence[dict[str, str]]) -> int:
    """Tokens a prompt will cost, as the chat template frames it."""
    return sum(_cost(m["content"]) for m in messages)
