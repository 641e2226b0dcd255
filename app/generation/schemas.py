import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StringConstraints,
    field_validator,
)

from app.chats.modes import DEFAULT_MODE
from app.chats.schemas import (
    MODE_PARAMS_DESCRIPTION,
    ChatCreate,
    ModeName,
    ReplyOutcomeRead,
    mode_params_schema,
)
from app.core.jsontypes import JsonNumber
from app.core.text import NoNul
from app.files.schemas import AttachmentRead, ContextCut
from app.knowledge.schemas import CollectionIds
from app.tools.schemas import ToolIds

# Generous: the configured MAX_INPUT_CHARS applies a clear 413 below this hard ceiling.
Content = Annotated[str, Field(min_length=1, max_length=200_000), NoNul]
ModelName = Annotated[str, Field(max_length=100), NoNul]
ATTACHMENTS_DESCRIPTION = (
    "Ids of your files (POST /api/files) to attach, in order: at most MAX_ATTACHMENTS (10), "
    "each once. Images need a vision model."
)


class SendMessageRequest(BaseModel):
    content: Content
    model: ModelName | None = None
    attachments: list[uuid.UUID] = Field(default_factory=list, description=ATTACHMENTS_DESCRIPTION)
    parent_id: uuid.UUID | None = Field(
        default=None, description="Answer under this message; default: the current thread's end."
    )
    collection_ids: CollectionIds | None = Field(
        default=None,
        description="Retrieve from these collections for this message instead of the chat's "
        "(`[]`: none). Absent or null: the chat's `collection_ids`.",
    )
    tool_ids: ToolIds | None = Field(
        default=None,
        description="Offer these tools for this message instead of the chat's (`[]`: none). "
        "Absent or null: the chat's `tool_ids`.",
    )
    stream: StrictBool | None = Field(
        default=None, description="Stream SSE even without `Accept: text/event-stream`."
    )


class StartChatRequest(ChatCreate):
    """A new chat (every field of POST /api/chats) and its first message."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"content": "What should I see in Lisbon in two days?"},
                {
                    "title": "Deadline extension",
                    "mode": "email",
                    "mode_params": {"purpose": "Ask for one more week", "tone": "formal"},
                    "content": "Write it to my manager, Sam.",
                    "stream": True,
                },
            ]
        }
    )

    content: Content = Field(description="The chat's first message.")
    attachments: list[uuid.UUID] = Field(default_factory=list, description=ATTACHMENTS_DESCRIPTION)
    stream: StrictBool | None = Field(
        default=None, description="Stream SSE even without `Accept: text/event-stream`."
    )


class EditMessageRequest(BaseModel):
    content: Content
    model: ModelName | None = None
    attachments: list[uuid.UUID] | None = Field(
        default=None,
        description=f"{ATTACHMENTS_DESCRIPTION} Null or absent: the edited message's own.",
    )
    stream: StrictBool | None = None


class RegenerateRequest(BaseModel):
    model: ModelName | None = None
    stream: StrictBool | None = None


class SummarizeRequest(BaseModel):
    model: ModelName | None = None


class SummaryRead(BaseModel):
    chat_id: uuid.UUID
    summary: str


class ToolApproval(BaseModel):
    call_id: Annotated[str, StringConstraints(min_length=1, max_length=200)] = Field(
        description="The `id` of the `approval_required` event."
    )
    approve: StrictBool = Field(description="false refuses the call (the model is told).")


class ToolApprovalResult(BaseModel):
    call_id: str
    approved: bool


class StopResult(BaseModel):
    stopped: bool = Field(description="False when no reply was running in this chat.")


class GenerateRequest(BaseModel):
    mode: ModeName = DEFAULT_MODE
    params: dict[str, Any] = Field(
        default_factory=dict,
        description=MODE_PARAMS_DESCRIPTION,
        json_schema_extra=mode_params_schema(),
    )
    prompt: Content
    attachments: list[uuid.UUID] = Field(default_factory=list, description=ATTACHMENTS_DESCRIPTION)
    model: ModelName | None = None
    temperature: StrictFloat | None = Field(default=None, ge=0, le=2)
    top_p: StrictFloat | None = Field(default=None, gt=0, le=1)
    max_tokens: Annotated[int, Field(ge=1, le=32_768), JsonNumber] | None = None
    stream: StrictBool | None = None


class GenerationRead(ReplyOutcomeRead):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    mode: str
    params: dict[str, Any]
    prompt: str
    settings: dict[str, Any]
    output: str = Field(validation_alias="content")
    status: str
    model: str
    created_at: datetime
    updated_at: datetime
    attachments: list[AttachmentRead] = Field(
        default_factory=list, description="The files sent with the prompt, as they were then."
    )
    context_cuts: list[ContextCut] = Field(
        default_factory=list, description="Attachments the prompt left out or shortened."
    )

    @field_validator("attachments", "context_cuts", mode="before")
    @classmethod
    def _none_is_empty(cls, value: object) -> object:
        return [] if value is None else value


class GenerationPage(BaseModel):
    items: list[GenerationRead]
    next_cursor: str | None


class DeploymentRead(BaseModel):
    """One deployment of a model as the router sees it (never its API key)."""

    name: str
    base_url: str
    model: str = Field(description="The id the upstream knows the model by.")
    weight: float
    rpm: int | None
    tpm: int | None
    max_parallel: int | None
    state: Literal["healthy", "cooldown", "half_open"] = Field(
        description="`cooldown`: skipped until `cooldown_until`; `half_open`: its next request "
        "is a probe that decides whether it is healthy again."
    )
    cooldown_until: datetime | None
    in_flight: int = Field(description="Requests streaming from it now (every worker's).")
    ewma_ttft_ms: float | None = Field(description="Average time to first token (EWMA).")
    error_rate: float = Field(description="Failed attempts' share within LLM_FAIL_WINDOW_SECONDS.")
    last_error: str | None
    last_error_at: datetime | None


class UpstreamModelRead(BaseModel):
    model: str
    fallbacks: list[str]
    available: bool = Field(description="False while every deployment cools down.")
    deployments: list[DeploymentRead]


class ModelRead(BaseModel):
    name: str
    provider: str = Field(description="`openai` (an OpenAI-compatible upstream) or `echo`.")
    built_in: bool = Field(description="True for the local echo model, which calls no server.")
    context_length: int
    default: bool
    vision: bool = Field(
        description="Sees images: image attachments may be sent to it (else 422 "
        "`model_not_vision_capable`)."
    )
    available: bool = Field(
        default=True,
        description="False while every deployment of the model is cooling down after errors "
        "(a reply then waits for one, or is served by a fallback model).",
    )
