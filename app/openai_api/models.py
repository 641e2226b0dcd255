"""Stored responses of the Responses API (`store`, the default): read back with
GET /v1/responses/{id}, and continued with `previous_response_id`."""

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, UUIDPrimaryKey, utcnow


class StoredResponse(UUIDPrimaryKey, Base):
    """One response, as it was answered, and the conversation it ends (for the next turn)."""

    __tablename__ = "stored_response"
    __table_args__ = (Index("ix_stored_response_user_created", "user_id", "created_at"),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    model: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16))
    # The Response object as the client got it.
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    # The conversation up to and including this response, as chat messages: a later request
    # naming this one as `previous_response_id` continues from here.
    messages: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
