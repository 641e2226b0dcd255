import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, UUIDPrimaryKey, utcnow


class ModerationEvent(UUIDPrimaryKey, Base):
    """One thing a guardrail check did: refused, redacted, flagged, or let through when the guard
    model could not be reached (fail open).

    It says where and what, never the personal data it found (`detail` holds counts and names of
    files). `blocked_text` is a blocked reply's held-back text, with personal data replaced by
    placeholders, for administrators only. Chat, message and generation ids are a record, not
    links: the log outlives what it describes, and is deleted with the user."""

    __tablename__ = "moderation_event"
    __table_args__ = (Index("ix_moderation_event_created", "created_at", "id"),)

    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    chat_id: Mapped[uuid.UUID | None]
    message_id: Mapped[uuid.UUID | None]
    generation_id: Mapped[uuid.UUID | None]
    point: Mapped[str] = mapped_column(String(16))  # input | untrusted | output
    check: Mapped[str] = mapped_column(String(32))  # pii | blocked_patterns | guard_model | ...
    category: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(16))  # block | redact | flag | fail_open
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    blocked_text: Mapped[str | None] = mapped_column(Text)
