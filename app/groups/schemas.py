import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints

from app.core.db import INT32_MAX
from app.core.jsontypes import JsonNumber
from app.core.text import NoNul

GroupName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), NoNul
]
Description = Annotated[str, StringConstraints(max_length=2000), NoNul]
ModelName = Annotated[str, StringConstraints(min_length=1, max_length=100), NoNul]
Models = Annotated[
    list[ModelName],
    Field(
        max_length=200,
        description="The restricted models the group's members may use (PATCH "
        "/api/admin/models/{model_name} restricts a model). Unrestricted models need no group.",
    ),
]
Quota = Annotated[int, Field(ge=0, le=INT32_MAX), JsonNumber]
Admins = Annotated[
    list[uuid.UUID],
    Field(
        max_length=100,
        description="Users who manage the group's membership (and nothing else); they need "
        "not be members.",
    ),
]
QUOTA_DESCRIPTION = (
    "Tokens per UTC day for each member; the tighter of this and the member's own quota "
    "applies. Null: no group quota."
)


class GroupCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"name": "research", "models": ["gpt-4o"], "daily_token_quota": 200000}]
        }
    )

    name: GroupName
    description: Description | None = None
    models: Models = []
    daily_token_quota: Quota | None = Field(default=None, description=QUOTA_DESCRIPTION)
    admins: Admins = []


class GroupUpdate(BaseModel):
    """Only the fields sent change; `models` and `admins` are replaced whole."""

    name: GroupName | None = None
    description: Description | None = None
    models: Models | None = None
    daily_token_quota: Quota | None = Field(default=None, description=QUOTA_DESCRIPTION)
    admins: Admins | None = None


class GroupRead(BaseModel):
    id: uuid.UUID
    name: str
    description: str | None
    models: list[str]
    daily_token_quota: int | None
    admins: list[uuid.UUID]
    member_count: int
    created_at: datetime
    updated_at: datetime


class GroupMemberRead(BaseModel):
    id: uuid.UUID
    email: str
    display_name: str


class GroupDetail(GroupRead):
    members: list[GroupMemberRead] = Field(description="Every member, by email.")


class GroupMemberAdd(BaseModel):
    user_id: uuid.UUID


class MyGroupRead(BaseModel):
    id: uuid.UUID
    name: str
    description: str | None
    models: list[str]
    daily_token_quota: int | None
    member: bool = Field(description="You are a member (the group's models and quota apply).")
    admin: bool = Field(description="You manage the group's membership.")


class ModelAccessUpdate(BaseModel):
    restricted: StrictBool = Field(
        description="true: only the members of groups that list the model (and administrators) "
        "may use it; false: everyone may."
    )


class ModelAccessRead(BaseModel):
    name: str
    restricted: bool
    groups: list[str] = Field(description="The groups whose `models` list it, by name.")
