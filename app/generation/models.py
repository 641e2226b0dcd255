import uuid
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.chats.models import ReplyOutcome
from app.core.db import Base, Timestamps, UUIDPrimaryKey


class Generation(ReplyOutcome, UUIDPrimaryKey, Timestamps, Base):
    """One stateless generation (POST /api/generate), kept in the user's history."""

    __tablename__ = "generation"
    __table_args__ = (Index("ix_generation_user_created", "user_id", "created_at", "id"),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    mode: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prompt: Mapped[str] = mapped_column(Text)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The reply: its text and status here, the rest from ReplyOutcome, as on a chat message.
    content: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="streaming")
    model: Mapped[str] = mapped_column(String(100))
    # The files sent with the prompt, as they were then (AttachmentRead); null: none. A record,
    # not a link: deleting a file later leaves the history as it was.
    attachments: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
