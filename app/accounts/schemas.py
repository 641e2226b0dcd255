import uuid
from datetime import datetime
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StringConstraints,
)

from app.auth.schemas import AnyPassword, DisplayName
from app.core.db import INT32_MAX
from app.core.emails import Email
from app.core.jsontypes import JsonNumber
from app.core.text import NoNul
from app.users.models import Role

ModelName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), NoNul
]
Temperature = Annotated[StrictFloat, Field(ge=0, le=2)]
SystemPrompt = Annotated[str, StringConstraints(max_length=8000), NoNul]


class Preferences(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    default_model: str | None = None
    temperature: float | None = None
    system_prompt: str | None = None


class PreferencesUpdate(BaseModel):
    """Fields left out stay as they are; null clears one."""

    # Unknown fields are refused, not ignored: a misspelt field must not look like success
    # (and nothing beyond these may be mass-assigned).
    model_config = ConfigDict(extra="forbid")

    default_model: ModelName | None = None
    temperature: Temperature | None = None
    system_prompt: SystemPrompt | None = None


class ProfileRead(BaseModel):
    id: uuid.UUID
    email: str
    pending_email: str | None = Field(
        description="A new address waiting for its verification link, if any."
    )
    display_name: str
    role: str
    email_verified: bool
    mfa_enabled: bool
    daily_token_quota: int | None
    created_at: datetime
    preferences: Preferences


class ProfileUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    display_name: DisplayName | None = None
    preferences: PreferencesUpdate | None = None
    email: Email | None = Field(
        default=None,
        description="A new address: needs current_password; takes effect once the link mailed "
        "to it is opened.",
    )
    current_password: AnyPassword | None = None


class DeleteAccountRequest(BaseModel):
    password: AnyPassword


class AdminUserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    display_name: str
    role: str
    is_active: bool
    email_verified: bool
    mfa_enabled: bool
    daily_token_quota: int | None
    created_at: datetime
    updated_at: datetime


class AdminUserPage(BaseModel):
    items: list[AdminUserRead]
    total: int
    limit: int
    offset: int


class AdminUserUpdate(BaseModel):
    """Fields left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    is_active: StrictBool | None = None
    role: Role | None = None
    daily_token_quota: Annotated[int, Field(ge=0, le=INT32_MAX), JsonNumber] | None = Field(
        default=None,
        description="Tokens per UTC day; null: the server default (DAILY_TOKEN_QUOTA).",
    )
