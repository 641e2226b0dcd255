import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from app.chats.models import MessageStatus, Role
from app.knowledge.schemas import SourceRead


class ShareRead(BaseModel):
    """A chat's public link, as its owner sees it."""

    chat_id: uuid.UUID
    title: str | None = Field(description="The chat's title (null: untitled).")
    token: str = Field(description="The link's secret (256 bits); anyone holding it can read.")
    url: str = Field(description="The read-only page: `/s/{token}` of the web client.")
    last_message_id: uuid.UUID | None = Field(
        description="The newest message shown; later turns stay private until shared again."
    )
    created_at: datetime
    updated_at: datetime = Field(description="When the snapshot last moved forward.")


class SharedImage(BaseModel):
    id: uuid.UUID
    name: str
    media_type: str
    width: int | None
    height: int | None
    url: str = Field(description="GET it with the same token: /api/shared/{token}/files/{id}.")


class SharedMessage(BaseModel):
    id: uuid.UUID
    role: Role
    content: str
    status: MessageStatus
    model: str | None
    created_at: datetime
    sources: list[SourceRead] = Field(default_factory=list)
    images: list[SharedImage] = Field(
        default_factory=list, description="User messages: the images attached, in order."
    )


class SharedChat(BaseModel):
    """A shared snapshot: the branch shown when the chat was (last) shared, nothing else (no
    owner, no other branches, no attachments but the images in the thread)."""

    title: str | None
    shared_at: datetime
    messages: list[SharedMessage] = Field(description="Oldest first.")
