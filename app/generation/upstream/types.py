"""What a provider is given (a model, sampling options) and what it yields while it streams.

Every provider yields the same small events: `TextDelta`s as text arrives (and `ToolCallDelta`s
when the request offered tools and the model calls one), then `Usage` when the
upstream reported it, then `Finish` as the very last event. Anything else ends the stream with an
`UpstreamError` (app/generation/errors.py), even after text has been yielded: the caller keeps
the text it already received and decides how to save it.
"""

from collections.abc import AsyncGenerator
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, Protocol

# One message of the OpenAI Chat Completions API: {"role", "content"}, the content either a
# string or (for images) a list of content parts ({"type": "text", ...}, {"type": "image_url",
# ...}).
ChatMessage = dict[str, Any]


@dataclass(frozen=True)
class Deployment:
    """One place a model is served: an upstream address, its key and the id it knows the model
    by, with what the router weighs and caps it by (docs/upstreams.md#routing)."""

    name: str  # unique within its model; the host and port unless the operator names it
    base_url: str
    api_key: str | None = field(default=None, repr=False)
    upstream_model: str = ""
    weight: float = 1.0
    rpm: int | None = None  # requests per minute it may be sent
    tpm: int | None = None  # tokens per minute (prompt and completion) it may be sent
    max_parallel: int | None = None  # replies at once


@dataclass(frozen=True)
class ModelConfig:
    """A model as users see it, and where and how to reach it: one deployment or several."""

    name: str
    base_url: str | None  # e.g. "http://gpu-1:8000/v1"; None for the built-in echo model
    api_key: str | None = field(repr=False)
    upstream_model: str  # the id the upstream knows the model by
    context_length: int
    provider: Literal["openai", "echo"]
    # Sees images: only such models are sent image content parts.
    vision: bool = False
    # Where the model is served; empty for echo. base_url, api_key and upstream_model above are
    # the first deployment's (or, for a copy made by at(), the chosen one's).
    deployments: tuple[Deployment, ...] = ()
    # The deployment this copy points at (set by at()), None for the model as configured.
    deployment: str | None = None

    def at(self, deployment: Deployment) -> "ModelConfig":
        """This model as served by `deployment`: what a provider is given to call it there."""
        return replace(
            self,
            base_url=deployment.base_url,
            api_key=deployment.api_key,
            upstream_model=deployment.upstream_model,
            deployment=deployment.name,
        )


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


@dataclass(frozen=True)
class Served:
    """Who is answering: the model and the deployment the router chose, yielded once before the
    first content of a routed stream (a fallback model may answer for the one asked for)."""

    model: str
    deployment: str

    def as_json(self) -> dict[str, str]:
        return {"model": self.model, "deployment": self.deployment}


@dataclass(frozen=True)
class StageEvent:
    """An event a pipeline stage sends the client from within the stream (`tool_call`,
    `tool_result`, `approval_required`), in its place among the deltas."""

    name: Literal["tool_call", "approval_required", "tool_result"]
    data: dict[str, Any]


UpstreamEvent = TextDelta | ToolCallDelta | Usage | Finish | Served | StageEvent


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
    # The chunks retrieval quoted in the messages (its `sources`), saved with the reply.
    sources: list[dict[str, Any]] | None = None
    # The tool calls of the reply so far (the tools stage), saved with the reply.
    tool_steps: list[dict[str, Any]] = field(default_factory=list)
