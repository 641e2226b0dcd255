"""What a provider is given (a model, sampling options) and what it yields while it streams.

Every provider yields the same small events: `TextDelta`s as text arrives (and `ToolCallDelta`s
when the request offered tools and the model calls one), then `Usage` when the
upstream reported it, then `Finish` as the very last event. Anything else ends the stream with an
`UpstreamError` (app/generation/errors.py), even after text has been yielded: the caller keeps
the text it already received and decides how to save it.
"""

from collections.abc import AsyncGenerator
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

# One message of the OpenAI Chat Completions API: {"role", "content"}, the content either a
# string or (for images) a list of content parts ({"type": "text", ...}, {"type": "image_url",
# ...}).
ChatMessage = dict[str, Any]


@dataclass(frozen=True)
class ModelConfig:
    """A model as users see it, and where and how to reach it."""

    name: str
    base_url: str | None  # e.g. "http://gpu-1:8000/v1"; None for the built-in echo model
    api_key: str | None
    upstream_model: str  # the id the upstream knows the model by
    context_length: int
    provider: Literal["openai", "echo"]
    # Sees images: only such models are sent image content parts.
    vision: bool = False


@dataclass
class SamplingParams:
    """Sampling options; only those set are sent, so the upstream's own defaults apply otherwise."""

    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    # Further request fields passed to the upstream as they are (the /v1 surface's `tools`,
    # `tool_choice`, `response_format`, `seed`, `top_k`, ...); they never override the ones above.
    extra: dict[str, Any] = field(default_factory=dict)

    def as_body(self) -> dict[str, Any]:
        own = {key: value for key, value in asdict(self).items() if value is not None}
        extra = own.pop("extra")
        return {**extra, **own} if extra else own


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True)
class ToolCallDelta:
    """A piece of a tool call the model makes, as the upstream streamed it: the call's `index`,
    and on its first piece its `id` and function `name`, then fragments of its JSON `arguments`."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""

    def as_json(self) -> dict[str, Any]:
        """The OpenAI `tool_calls` entry of a chunk's delta."""
        function: dict[str, Any] = {"arguments": self.arguments}
        if self.name is not None:
            function["name"] = self.name
        entry: dict[str, Any] = {"index": self.index}
        if self.id is not None:
            entry["id"] = self.id
            entry["type"] = "function"
        entry["function"] = function
        return entry


@dataclass(frozen=True)
class Finish:
    reason: str | None  # "stop", "length", ... as the upstream said


UpstreamEvent = TextDelta | ToolCallDelta | Usage | Finish


class Provider(Protocol):
    """Streams replies from one kind of upstream (OpenAI-compatible, or the built-in echo)."""

    def stream(
        self, model: ModelConfig, messages: list[ChatMessage], params: SamplingParams
    ) -> AsyncGenerator[UpstreamEvent, None]:
        """Stream a reply; closing the generator (or cancelling its task) stops the upstream."""
        ...

    async def list_models(self, model: ModelConfig) -> list[str]:
        """The model ids the upstream serves (a cheap reachability check)."""
        ...


@dataclass
class UpstreamCall:
    """What a reply sends upstream. The pipeline's `before_upstream` hooks may change any of it
    in the reply's task (routing chooses the provider, tools add `tools`)."""

    provider: Provider
    model: ModelConfig
    messages: list[ChatMessage]
    params: SamplingParams
    tools: list[dict[str, Any]] = field(default_factory=list)
