import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.chats.models import ReplyOutcome
from app.core.db import Base, Timestamps, UUIDPrimaryKey, utcnow


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
    # The model and deployment that answered ({"model", "deployment"}; routing).
    served_by: Mapped[dict[str, str] | None] = mapped_column(JSON(none_as_null=True))
    # The files sent with the prompt, as they were then (AttachmentRead); null: none. A record,
    # not a link: deleting a file later leaves the history as it was.
    attachments: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)


class IdempotencyKey(UUIDPrimaryKey, Base):
    """A send made with an Idempotency-Key header: a retry with the same key and body gets the
    same reply (app/generation/idempotency.py). Claimed before the reply starts, so concurrent
    retries on any worker find it; expires after IDEMPOTENCY_KEY_HOURS."""

    __tablename__ = "idempotency_key"
    __table_args__ = (
        UniqueConstraint("user_id", "key"),
        Index("ix_idempotency_key_expires_at", "expires_at"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    # SHA-256 of the method, path and body: the same key with another request is refused.
    fingerprint: Mapped[str] = mapped_column(String(64))
    # The reply it started ("message" or "generation", and the row's id); null while the
    # request that claimed the key is still preparing it.
    reply_kind: Mapped[str | None] = mapped_column(String(16))
    reply_id: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
