from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, UUIDPrimaryKey, utcnow


class AuditEvent(UUIDPrimaryKey, Base):
    """One security or administrative event. Append-only: no code path updates a row, and only
    the retention purge (AUDIT_DAYS) deletes them.

    `actor` and `target_id` are text, not foreign keys: the log outlives the accounts and
    objects it names (a deleted account's events stay). `details` is small JSON that never holds
    a password, token or key (app/audit/recorder.py drops such fields)."""

    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_event_time", "time", "id"),
        Index("ix_audit_event_actor", "actor", "time"),
        Index("ix_audit_event_action", "action", "time"),
        Index("ix_audit_event_target", "target_type", "target_id", "time"),
    )

    time: Mapped[datetime] = mapped_column(default=utcnow)
    # A user id, "system" (Parley itself), or "anonymous" (a sign-in for no known account).
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(128))
    outcome: Mapped[str] = mapped_column(String(16))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(255))
    request_id: Mapped[str | None] = mapped_column(String(128))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
