import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from app.core.text import NoNul
from app.knowledge.schemas import CollectionIds

ProjectName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), NoNul
]
Instructions = Annotated[str, StringConstraints(max_length=20_000), NoNul]
ProjectModel = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), NoNul
]
ToolId = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), NoNul
]
MAX_TOOLS_PER_PROJECT = 50
ToolIds = Annotated[
    list[ToolId],
    Field(
        max_length=MAX_TOOLS_PER_PROJECT,
        description="Tools its chats may use (GET /api/tools), at most 50.",
    ),
]
# What DELETE /api/projects/{project_id} does with the project's chats.
ChatsOnDelete = Literal["move", "trash"]


class ProjectCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"name": "Thesis", "instructions": "Answer as a patient statistics tutor."}
            ]
        }
    )

    name: ProjectName
    instructions: Instructions | None = Field(
        default=None, description="Put first in the system prompt of every chat in the project."
    )
    model: ProjectModel | None = Field(
        default=None, description="The model of its chats that name none (GET /api/models)."
    )
    collection_ids: CollectionIds = Field(default_factory=list)
    tool_ids: ToolIds = Field(default_factory=list)


class ProjectUpdate(BaseModel):
    """Only the fields sent change; null resets instructions and model, and empties the lists."""

    name: ProjectName | None = None
    instructions: Instructions | None = None
    model: ProjectModel | None = None
    collection_ids: CollectionIds | None = None
    tool_ids: ToolIds | None = None


class ProjectRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    instructions: str | None
    model: str | None
    collection_ids: list[uuid.UUID] = Field(
        default_factory=list, description="Collections its chats retrieve from, besides theirs."
    )
    tool_ids: list[str] = Field(default_factory=list)
    chat_count: int = Field(default=0, description="Its chats, out of the trash.")
    created_at: datetime
    updated_at: datetime

    @field_validator("collection_ids", "tool_ids", mode="before")
    @classmethod
    def _none_is_empty(cls, value: object) -> object:
        return [] if value is None else value
