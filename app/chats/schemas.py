import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StringConstraints,
    field_validator,
)
from pydantic_core import PydanticCustomError

from app.chats.errors import UnknownMode
from app.chats.models import MessageStatus, Role
from app.chats.modes import DEFAULT_MODE, MODES
from app.chats.tags import Tags
from app.core.jsontypes import JsonNumber
from app.core.text import NoNul
from app.files.schemas import AttachmentRead, ContextCut
from app.guardrails.schemas import ModeGuardrails
from app.knowledge.schemas import CollectionIds, SourceRead
from app.tools.schemas import ToolIds


def _known_mode(name: str) -> str:
    if name not in MODES:
        raise PydanticCustomError(
            UnknownMode.code,
            "No mode named '{name}'; available: {known}.",
            {"name": name, "known": ", ".join(MODES)},
        )
    return name


ModeName = Annotated[
    str,
    AfterValidator(_known_mode),
    Field(description="A mode from `GET /api/modes`.", json_schema_extra={"enum": list(MODES)}),
]
Title = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), NoNul
]
ModelName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), NoNul
]
SystemPrompt = Annotated[str, StringConstraints(max_length=20_000), NoNul]
# JSON numbers and booleans only: pydantic's lax mode would take `true` for 1 and "1" for 1.
Temperature = Annotated[StrictFloat, Field(ge=0, le=2)]
TopP = Annotated[StrictFloat, Field(gt=0, le=1)]
MaxTokens = Annotated[int, Field(ge=1, le=262_144), JsonNumber]
MAX_QUERY_LENGTH = 200


def mode_params_schema(*, nullable: bool = False) -> dict[str, Any]:
    """`mode_params` is one of the modes' parameter schemas (which one, `mode` decides)."""
    branches: list[dict[str, Any]] = [
        {k: v for k, v in mode.params.model_json_schema().items() if k != "title"}
        for mode in MODES.values()
    ]
    if nullable:
        branches.append({"type": "null"})
    return {"anyOf": branches}


MODE_PARAMS_DESCRIPTION = "The parameters of `mode`, checked against its schema (GET /api/modes)."


class ChatSettings(BaseModel):
    """Generation settings of a chat; null means the default (server, mode or upstream)."""

    model: ModelName | None = Field(default=None, description="Null: the server's default model.")
    system_prompt: SystemPrompt | None = Field(
        default=None, description="Null: the mode's system prompt."
    )
    temperature: Temperature | None = None
    top_p: TopP | None = None
    max_tokens: MaxTokens | None = None


class ChatCreate(ChatSettings):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"title": "Trip to Lisbon"},
                {
                    "title": "Deadline extension",
                    "mode": "email",
                    "mode_params": {"purpose": "Ask for one more week", "tone": "formal"},
                },
            ]
        }
    )

    title: Title | None = Field(default=None, description="Null until named (or auto-titled).")
    mode: ModeName = DEFAULT_MODE
    mode_params: dict[str, Any] = Field(
        default_factory=dict,
        description=MODE_PARAMS_DESCRIPTION,
        json_schema_extra=mode_params_schema(),
    )
    pinned: StrictBool = False
    collection_ids: CollectionIds = Field(default_factory=list)
    tool_ids: ToolIds | None = Field(
        default=None,
        description="The tools the model may call (`server.tool` ids from GET /api/tools). "
        "Absent or null: the mode's preset tools (MODE_TOOLS), if any; `[]`: none.",
    )
    project_id: uuid.UUID | None = Field(
        default=None, description="File it in one of your projects (GET /api/projects)."
    )
    tags: Tags = Field(default_factory=list)


class ChatUpdate(ChatSettings):
    """Only the fields sent change; send null to reset a setting to its default."""

    title: Title | None = None
    mode: ModeName | None = None
    mode_params: dict[str, Any] | None = Field(
        default=None,
        description="Replaces the parameters. Changing `mode` without them validates `{}`.",
        json_schema_extra=mode_params_schema(nullable=True),
    )
    pinned: StrictBool | None = None
    archived: StrictBool | None = None
    collection_ids: CollectionIds | None = Field(
        default=None, description="Replaces the chat's collections ([] or null: none)."
    )
    tool_ids: ToolIds | None = Field(
        default=None, description="Replaces the chat's tools ([] or null: none)."
    )
    project_id: uuid.UUID | None = Field(
        default=None, description="Moves it into one of your projects (null: out of its project)."
    )
    tags: Tags | None = Field(default=None, description="Replaces its tags ([] or null: none).")


class ChatRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    title: str | None
    summary: str | None = Field(default=None, description="Set by POST .../summarize.")
    mode: str
    mode_params: dict[str, Any]
    model: str | None
    system_prompt: str | None
    temperature: float | None
    top_p: float | None
    max_tokens: int | None
    pinned: bool
    archived: bool
    created_at: datetime
    updated_at: datetime
    last_message_at: datetime
    deleted_at: datetime | None = Field(
        default=None,
        description="When the chat went to the trash (null: not in it); purged TRASH_DAYS later.",
    )
    collection_ids: list[uuid.UUID] = Field(
        default_factory=list, description="The collections its replies retrieve from."
    )
    tool_ids: list[str] = Field(
        default_factory=list, description="The tools the model may call in its replies."
    )
    project_id: uuid.UUID | None = Field(default=None, description="Its project (null: none).")
    tags: list[str] = Field(default_factory=list, description="Its tags, sorted.")

    @field_validator("collection_ids", "tool_ids", "tags", mode="before")
    @classmethod
    def _none_is_empty(cls, value: object) -> object:
        return [] if value is None else value


class ChatPage(BaseModel):
    items: list[ChatRead]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at end.")


class TagCount(BaseModel):
    tag: str
    count: int = Field(description="Your chats with this tag, out of the trash.")


class ServedBy(BaseModel):
    model: str = Field(description="The model that answered (a fallback answers for another).")
    deployment: str = Field(description="Its deployment (docs/upstreams.md#routing).")


class ToolStepRead(BaseModel):
    """One tool call of a reply, as it was run."""

    step: int = Field(description="Which model call of the reply asked for it (from 0).")
    id: str = Field(description="The call's id (the `tool_call` event's).")
    name: str = Field(description="The tool as the model named it.")
    tool_id: str | None = Field(description="`server.tool`; null: the model named no such tool.")
    arguments: str = Field(description="The arguments as the model wrote them (JSON text).")
    result: str | None = Field(description="What the model was given; null: stopped first.")
    is_error: bool
    duration_ms: int | None
    approval: Literal["not_needed", "required", "approved", "denied", "timed_out"] = Field(
        description="`required`: the reply ended while the call waited for the user."
    )


class ReplyOutcomeRead(BaseModel):
    """What a reply records besides its text (a message's and a generation's alike)."""

    model_config = ConfigDict(from_attributes=True)

    served_by: ServedBy | None = Field(
        default=None,
        description="Replies from an upstream: the model and the deployment that answered.",
    )

    prompt_tokens: int | None
    completion_tokens: int | None
    usage_estimated: bool
    error_code: str | None
    error_message: str | None
    time_to_first_token_ms: int | None
    duration_ms: int | None


class MessageBase(ReplyOutcomeRead):
    id: uuid.UUID
    chat_id: uuid.UUID
    parent_id: uuid.UUID | None
    role: Role
    content: str
    status: MessageStatus
    model: str | None
    created_at: datetime
    updated_at: datetime
    attachments: list[AttachmentRead] = Field(
        default_factory=list, description="User messages: the files attached, in order."
    )
    context_cuts: list[ContextCut] = Field(
        default_factory=list,
        description="Replies: attachments their prompt left out or shortened (empty: none).",
    )
    sources: list[SourceRead] = Field(
        default_factory=list,
        description="Replies: the chunks retrieval put in their prompt (chats with collections).",
    )

    tool_steps: list[ToolStepRead] = Field(
        default_factory=list,
        description="Replies in chats with tools: each tool call, in order (docs/tools.md).",
    )

    @field_validator("context_cuts", "sources", "tool_steps", mode="before")
    @classmethod
    def _none_is_empty(cls, value: object) -> object:
        return [] if value is None else value


class MessageRead(MessageBase):
    sibling_ids: list[uuid.UUID] = Field(
        default_factory=list,
        description="This message and its alternatives (edits, regenerated replies), oldest "
        "first. Pass one as `leaf_id` to show that version's branch.",
    )
    sibling_index: int = Field(default=0, description="This message's position in sibling_ids.")


class MessagePage(BaseModel):
    items: list[MessageRead] = Field(description="Oldest first.")
    leaf_id: uuid.UUID | None = Field(description="The newest message of the branch shown.")
    older_cursor: str | None = Field(description="Earlier messages; null at the first one.")
    newer_cursor: str | None = Field(description="Later messages; null at the leaf.")


class ModeRead(BaseModel):
    name: str
    title: str
    description: str
    params_schema: dict[str, Any] = Field(description="JSON Schema of `mode_params`.")
    vision: bool = Field(
        default=False,
        description="Made for images: use a vision model (`vision` in GET /api/models) and "
        "attach an image (POST /api/generate requires one).",
    )
    guardrails: ModeGuardrails = Field(
        description="The guardrail checks on for this mode at each point (docs/guardrails.md)."
    )


ExportFormat = Literal["json", "markdown"]


class ChatExport(BaseModel):
    """A chat as downloaded by `GET /api/chats/{chat_id}/export?format=json`."""

    format: Literal["parley.chat.v1"] = "parley.chat.v1"
    exported_at: datetime
    chat: ChatRead
    thread: list[uuid.UUID] = Field(description="Ids of the branch shown, root first.")
    messages: list[MessageBase] = Field(description="Every message of every branch, oldest first.")
