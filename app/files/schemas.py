import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from app.files.models import FileKind


class FileRead(BaseModel):
    """An uploaded file's metadata."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str = Field(description="The sanitised file name.")
    media_type: str = Field(description="Detected from the content, never from the client.")
    kind: FileKind
    size_bytes: int
    sha256: str = Field(description="Hex SHA-256 of the content.")
    width: int | None = Field(description="Images: width in pixels.")
    height: int | None = Field(description="Images: height in pixels.")
    page_count: int | None = Field(description="PDFs: pages (null if encrypted).")
    created_at: datetime


class FilePage(BaseModel):
    items: list[FileRead]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page.")
