import uuid
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, Timestamps, UUIDPrimaryKey


class Project(UUIDPrimaryKey, Timestamps, Base):
    """A user's folder of chats, with instructions and knowledge every chat in it shares."""

    __tablename__ = "project"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    # Put first in the system prompt of every chat in the project, before the mode's.
    instructions: Mapped[str | None] = mapped_column(Text)
    # The model of its chats that name none (before the user's default model).
    model: Mapped[str | None] = mapped_column(String(100))
    # Collections its chats retrieve from besides their own (ids, as strings); null: none.
    collection_ids: Mapped[list[str] | None] = mapped_column(JSON)
    # Tools its chats may use (ids, as strings); null: none.
    tool_ids: Mapped[list[Any] | None] = mapped_column(JSON)
