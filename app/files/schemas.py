import uuid
from datetime import datetime
from typing import Literal

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


class AttachmentRead(BaseModel):
    """A file attached to a message (or a stateless generation), as messages show it."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID = Field(description="The file's id (GET /api/files/{file_id}).")
    name: str
    kind: FileKind
    media_type: str
    size_bytes: int
    width: int | None = Field(default=None, description="Images: width in pixels.")
    height: int | None = Field(default=None, description="Images: height in pixels.")
    page_count: int | None = Field(default=None, description="PDFs: pages.")


class ContextCut(BaseModel):
    """An attachment that a reply's prompt left out or shortened (the prompt says so too)."""

    file_id: uuid.UUID
    name: str
    message_id: uuid.UUID | None = Field(
        default=None, description="The message it is attached to (null for /api/generate)."
    )
    cut: Literal["left_out", "truncated"]
    reason: Literal["context_window", "model_not_vision_capable", "document_limits"] = Field(
        description="`context_window`: it did not fit (newer messages and attachments come "
        "first); `model_not_vision_capable`: an earlier message's image, and this model sees "
        "no images; `document_limits`: the text passed DOCUMENT_MAX_PAGES or "
        "DOCUMENT_MAX_CHARS."
    )
