import uuid

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, Timestamps, UUIDPrimaryKey


class Prompt(UUIDPrimaryKey, Timestamps, Base):
    """A saved prompt of one user, offered by its `/command` in the composer."""

    __tablename__ = "prompt"
    # Also serves the user_id foreign key and the listing (by command).
    __table_args__ = (UniqueConstraint("user_id", "command", name="uq_prompt_command"),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    command: Mapped[str] = mapped_column(String(32))
    # Text with {{variables}}, filled in by the client before it is sent.
    content: Mapped[str] = mapped_column(Text)
