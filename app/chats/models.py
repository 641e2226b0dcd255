import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, Timestamps, UUIDPrimaryKey, utcnow


class Role(StrEnum):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"


class MessageStatus(StrEnum):
    COMPLETE = "complete"
    STREAMING = "streaming"
    CANCELLED = "cancelled"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


def _one_of(column: str, values: type[StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


class Chat(UUIDPrimaryKey, Timestamps, Base):
    """A conversation of one user, with its mode and generation settings."""

    __tablename__ = "chat"
    __table_args__ = (
        # An imported conversation is imported once (app/chats/transfer).
        Index("uq_chat_import", "user_id", "import_source", "import_id", unique=True),
        # The listing: one user's chats, archived or not, pinned first, most recently active
        # first, the id breaking ties for the cursor. Also serves the user_id foreign key.
        Index("ix_chat_listing", "user_id", "archived", "pinned", "last_message_at", "id"),
        # The purge of chats whose time in the trash is up (app/chats/trash.py).
        Index("ix_chat_deleted_at", "deleted_at"),
        # A project's chats (GET /api/chats?project_id=), and moving them out of it.
        Index("ix_chat_project_id", "project_id"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    # None until the user or the automatic title names the chat.
    title: Mapped[str | None] = mapped_column(String(200))
    # Imported chats: where from (chatgpt, claude, openwebui, parley) and the conversation's id
    # there; null for chats made here.
    import_source: Mapped[str | None] = mapped_column(String(16))
    import_id: Mapped[str | None] = mapped_column(String(200))
    # Set by POST /api/chats/{chat_id}/summarize.
    summary: Mapped[str | None] = mapped_column(Text)
    mode: Mapped[str] = mapped_column(String(32), default="chat")
    mode_params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # None means "the default": the server's default model, the mode's system prompt, and the
    # upstream's own sampling defaults.
    model: Mapped[str | None] = mapped_column(String(100))
    system_prompt: Mapped[str | None] = mapped_column(Text)
    temperature: Mapped[float | None]
    top_p: Mapped[float | None]
    max_tokens: Mapped[int | None]
    pinned: Mapped[bool] = mapped_column(default=False)
    archived: Mapped[bool] = mapped_column(default=False)
    # The creation time until the first message, then the newest message's time.
    last_message_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Set when the chat is moved to the trash; purged TRASH_DAYS later unless restored.
    deleted_at: Mapped[datetime | None]
    # The knowledge collections its replies retrieve from (ids, as strings); null: none.
    collection_ids: Mapped[list[str] | None] = mapped_column(JSON)
    # The tools the model may call in its replies (ids, `server.tool`); null or empty: none.
    tool_ids: Mapped[list[str] | None] = mapped_column(JSON)
    # The project it is filed in (app/projects). Deleting a project moves its chats out first
    # (no ON DELETE: SQLite cannot add a column with one that its reflection reads back).
    project_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("project.id"))
    # Its tags, sorted, as the API shows them; chat_tag holds the same for filtering and counts
    # (both written together, by ChatRepository.set_tags). Null: none.
    tags: Mapped[list[str] | None] = mapped_column(JSON)


class ChatTag(Base):
    """One tag of a chat (normalised: app/chats/tags.py); a chat has at most 20."""

    __tablename__ = "chat_tag"
    __table_args__ = (
        # GET /api/tags (counts per tag) and GET /api/chats?tag= (the chats with one).
        Index("ix_chat_tag_user_tag", "user_id", "tag"),
    )

    chat_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("chat.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The chat's user, copied so that a user's tags are counted without reading their chats.
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))


class ReplyOutcome:
    """What a reply records besides its text: a chat message and a stateless generation both
    carry these columns, so one saver (app/generation/reply_saver.py) writes either."""

    prompt_tokens: Mapped[int | None]
    completion_tokens: Mapped[int | None]
    usage_estimated: Mapped[bool] = mapped_column(default=False)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    time_to_first_token_ms: Mapped[int | None]
    duration_ms: Mapped[int | None]
    # The attachments left out of (or shortened in) the prompt, as a list of ContextCut
    # (app/files/schemas.py); null when nothing was cut.
    context_cuts: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)


class Message(ReplyOutcome, UUIDPrimaryKey, Timestamps, Base):
    """One message in a chat's tree: an edit or a regenerated reply is a sibling of the original."""

    __tablename__ = "message"
    __table_args__ = (
        # The newest message (the current leaf), and every message in order for export.
        Index("ix_message_chat_created", "chat_id", "created_at", "id"),
        # Messages at given depths: thread pages of unbranched chats, and the root siblings.
        Index("ix_message_chat_depth", "chat_id", "depth"),
        CheckConstraint(_one_of("role", Role), name="role"),
        CheckConstraint(_one_of("status", MessageStatus), name="status"),
    )

    chat_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("chat.id", ondelete="CASCADE"))
    # Indexed for the siblings of a message and so that cascading deletes find children quickly.
    parent_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("message.id", ondelete="CASCADE"), index=True
    )
    # Distance from the root (0). Children are always one deeper than their parent.
    depth: Mapped[int] = mapped_column(default=0)
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default=MessageStatus.COMPLETE)
    model: Mapped[str | None] = mapped_column(String(100))
    # Replies: the chunks retrieval put in the prompt (app/knowledge/schemas.py SourceRead).
    sources: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    # Replies: the model and deployment that answered ({"model", "deployment"}; routing).
    served_by: Mapped[dict[str, str] | None] = mapped_column(JSON(none_as_null=True))
    # Replies that called tools: each call in order ({step, id, name, tool_id, arguments,
    # result, is_error, duration_ms, approval}; app/generation/pipeline/stages/tools.py).
    tool_steps: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON(none_as_null=True))
