"""Groups, their members and administrators, and the models restricted to groups."""

import uuid
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, Timestamps, UUIDPrimaryKey, utcnow


class Group(UUIDPrimaryKey, Timestamps, Base):
    """A named set of users. `models`: the restricted models its members may use;
    `daily_token_quota`: tokens per UTC day for each member (the tighter of this and the
    user's own applies)."""

    __tablename__ = "user_group"

    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    models: Mapped[list[str]] = mapped_column(JSON, default=list)
    daily_token_quota: Mapped[int | None]


class GroupMember(Base):
    """A user in a group."""

    __tablename__ = "group_member"

    group_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("user_group.id", ondelete="CASCADE"), primary_key=True
    )
    # Indexed: a user's groups are read on every request that names a model.
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    added_at: Mapped[datetime] = mapped_column(default=utcnow)


class GroupAdmin(Base):
    """A user who manages a group's membership (and nothing else); not necessarily a member."""

    __tablename__ = "group_admin"

    group_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("user_group.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class RestrictedModel(Base):
    """A model only the members of the groups listing it may use (administrators too). The
    model's other settings stay in configuration; a name no longer configured is harmless."""

    __tablename__ = "restricted_model"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    restricted_at: Mapped[datetime] = mapped_column(default=utcnow)
