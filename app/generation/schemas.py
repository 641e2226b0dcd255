import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# Generous: the configured MAX_INPUT_CHARS applies a clear 413 below this hard ceiling.
ContentField = Field(min_length=1, max_length=200_000)


class SendMessageRequest(BaseModel):
    content: str = ContentField
    model: str | None = Field(default=None, max_length=100)
    parent_id: uuid.UUID | None = Field(
        default=None, description="Answer under this message; default: the current thread's end."
    )
    stream: bool | None = Field(
        default=None, description="Stream SSE even without `Accept: text/event-stream`."
    )


class EditMessageRequest(BaseModel):
    content: str = ContentField
    model: str | None = Field(default=None, max_length=100)
    stream: bool | None = None


class RegenerateRequest(BaseModel):
    model: str | None = Field(default=None, max_length=100)
    stream: bool | None = None


class SummarizeRequest(BaseModel):
    model: str | None = Field(default=None, max_length=100)


class SummaryRead(BaseModel):
    chat_id: uuid.UUID
    summary: str


class StopResult(BaseModel):
    stopped: bool = Field(description="False when no reply was running in this chat.")


class GenerateRequest(BaseModel):
    mode: str = Field(default="chat", max_length=32)
    params: dict[str, Any] = Field(default_factory=dict)
    prompt: str = ContentField
    model: str | None = Field(default=None, max_length=100)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_tokens: int | None = Field(default=None, ge=1, le=32_768)
    stream: bool | None = None


class GenerationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    mode: str
    params: dict[str, Any]
    prompt: str
    settings: dict[str, Any]
    output: str = Field(validation_alias="content")
    status: str
    model: str
    prompt_tokens: int | None
    completion_tokens: int | None
    usage_estimated: bool
    error_code: str | None
    error_message: str | None
    time_to_first_token_ms: int | None
    duration_ms: int | None
    created_at: datetime
    updated_at: datetime


class GenerationPage(BaseModel):
    items: list[GenerationRead]
    next_cursor: str | None


class ModelRead(BaseModel):
    name: str
    provider: str = Field(description="`openai` (an OpenAI-compatible upstream) or `echo`.")
    built_in: bool = Field(description="True for the local echo model, which calls no server.")
    context_length: int
    default: bool
