import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, computed_field

from app.core.text import NoNul
from app.prompts.variables import variables_of

PromptName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), NoNul
]
Command = Annotated[
    str,
    StringConstraints(min_length=1, max_length=32, pattern=r"^[a-z0-9-]+$"),
    Field(description="Typed after `/` in the composer: lower-case letters, digits and `-`."),
]
PromptContent = Annotated[
    str,
    StringConstraints(min_length=1, max_length=20_000),
    NoNul,
    Field(description="The text, with `{{variables}}` the client asks for before it fills in."),
]


class PromptCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "Summarise for a manager",
                    "command": "tldr",
                    "content": "Summarise {{text}} in {{count}} bullet points.",
                }
            ]
        }
    )

    name: PromptName
    command: Command
    content: PromptContent


class PromptUpdate(BaseModel):
    """Only the fields sent change."""

    name: PromptName | None = None
    command: Command | None = None
    content: PromptContent | None = None


class PromptRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    command: str
    content: str
    created_at: datetime
    updated_at: datetime

    @computed_field(description="The `{{variables}}` of `content`, each once, in order.")  # type: ignore[prop-decorator]
    @property
    def variables(self) -> list[str]:
        return variables_of(self.content)
