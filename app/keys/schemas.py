import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.core.jsontypes import JsonNumber
from app.core.text import NoNul

Scope = Literal["chats", "knowledge"]
KeyName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), NoNul
]
ModelName = Annotated[str, StringConstraints(min_length=1, max_length=100), NoNul]
# Bounded by what the columns hold (a 32-bit integer on Postgres).
DailyTokenLimit = Annotated[int, Field(ge=1, le=2_000_000_000), JsonNumber]
Rpm = Annotated[int, Field(ge=1, le=100_000), JsonNumber]


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: KeyName
    expires_at: datetime | None = Field(default=None, description="Must be in the future.")
    scopes: list[Scope] = Field(
        default_factory=list,
        max_length=2,
        description="Besides /v1: `chats` opens /api/chats, /api/models, /api/modes and "
        "/api/generate; `knowledge` opens /api/collections and /api/files.",
    )
    models: list[ModelName] | None = Field(
        default=None, max_length=50, description="The models the key may use; null: all."
    )
    daily_token_limit: DailyTokenLimit | None = Field(
        default=None, description="Tokens per UTC day through this key, on top of your quota."
    )
    rpm: Rpm | None = Field(default=None, description="Requests per minute through this key.")


class ApiKeyUpdate(BaseModel):
    """Fields to change; a field sent as null removes that limit."""

    model_config = ConfigDict(extra="forbid")

    name: KeyName | None = None
    expires_at: datetime | None = None
    scopes: list[Scope] | None = Field(default=None, max_length=2)
    models: list[ModelName] | None = Field(default=None, max_length=50)
    daily_token_limit: DailyTokenLimit | None = None
    rpm: Rpm | None = None


class ApiKeyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    hint: str = Field(description="The key's last 4 characters.")
    scopes: list[str]
    models: list[str] | None
    daily_token_limit: int | None
    rpm: int | None
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None = Field(description="Updated at most once a minute.")
    tokens_today: int = Field(default=0, description="Tokens used through the key today (UTC).")


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="The key itself: shown this once, never again.")


class ApiKeyAdminRead(ApiKeyRead):
    user_id: uuid.UUID
    email: str
    revoked_at: datetime | None
