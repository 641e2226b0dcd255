import uuid
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, Timestamps, UUIDPrimaryKey


class Generation(UUIDPrimaryKey, Timestamps, Base):
    """One stateless generation (POST /api/generate), kept in the user's history."""

    __tablename__ = "generation"
    __table_args__ = (Index("ix_generation_user_created", "user_id", "created_at", "id"),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    mode: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prompt: Mapped[str] = mapped_column(Text)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The reply: same columns as a chat message, so one saver (reply_saver.py) saves both.
    content: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="streaming")
    model: Mapped[str] = mapped_column(String(100))
    prompt_tokens: Mapped[int | None]
    completion_tokens: Mapped[int | None]
    usage_estimated: Mapped[bool] = mapped_column(default=False)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    time_to_first_token_ms: Mapped[int | None]
    duration_ms: Mapped[int | None]
    # The files sent with the prompt, as they were then (AttachmentRead); null: none. A record,
    # not a link: deleting a file later leaves the history as it was.
    attachments: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    # As on chat replies: the attachments left out of (or shortened in) the prompt.
    context_cuts: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
