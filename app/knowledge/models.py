"""Collections, the documents ingested for them, and their chunks.

A collection lists files (collection_file); each link points at a knowledge_document, the unit
of ingestion: one per user, SHA-256 and embedding space, so the same bytes added twice (to the
same or another collection) are extracted, chunked and embedded once. A document's status is
what its files show. Chunks have integer ids: they are the rowids of the full-text index (FTS5)
and of the vector index (sqlite-vec's vec0, pgvector's table), which migrations and
app/knowledge/index.py create beside these tables.
"""

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.core.db import Base, Timestamps, UUIDPrimaryKey, utcnow


class DocumentStatus(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"


def _one_of(column: str, values: type[StrEnum]) -> str:
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


class Collection(UUIDPrimaryKey, Timestamps, Base):
    """A named set of one user's documents that chats retrieve from."""

    __tablename__ = "collection"
    __table_args__ = (Index("ix_collection_listing", "user_id", "created_at", "id"),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)


class KnowledgeDocument(UUIDPrimaryKey, Timestamps, Base):
    """The ingestion of one user's bytes (by SHA-256) in one embedding space, and its outcome."""

    __tablename__ = "knowledge_document"
    __table_args__ = (
        UniqueConstraint("user_id", "sha256", "space", name="uq_knowledge_document_bytes"),
        # The workers' claim: queued documents, and processing ones whose lease lapsed.
        Index("ix_knowledge_document_work", "status", "lease_until"),
        CheckConstraint(_one_of("status", DocumentStatus), name="status"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    sha256: Mapped[str] = mapped_column(String(64))
    # "<model>@<dimensions>" of the vectors, or "text" (full text only, no embedding endpoint).
    space: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(16), default=DocumentStatus.QUEUED)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    chunk_count: Mapped[int] = mapped_column(default=0)
    page_count: Mapped[int | None]
    # What the caps cut (RAG_MAX_PAGES, RAG_MAX_CHARS, RAG_MAX_CHUNKS), as sentences.
    cuts: Mapped[list[str] | None] = mapped_column(JSON)
    # Claims by the ingestion workers: started this many times; the worker holding it renews
    # lease_until while it works, so a lapsed lease means that worker is gone.
    attempts: Mapped[int] = mapped_column(default=0)
    lease_owner: Mapped[uuid.UUID | None]
    lease_until: Mapped[datetime | None]


class CollectionFile(Base):
    """A file in a collection, and the document its content is indexed as."""

    __tablename__ = "collection_file"
    __table_args__ = (
        Index("ix_collection_file_document_id", "document_id"),
        Index("ix_collection_file_file_id", "file_id"),
    )

    collection_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("collection.id", ondelete="CASCADE"), primary_key=True
    )
    file_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("file.id", ondelete="CASCADE"), primary_key=True
    )
    document_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("knowledge_document.id", ondelete="CASCADE")
    )
    added_at: Mapped[datetime] = mapped_column(default=utcnow)


class KnowledgeChunk(Base):
    """A piece of a document's text, as indexed and as quoted in prompts."""

    __tablename__ = "knowledge_chunk"
    # SQLite: ids never reused, so a vector left by a cascade is never mistaken for a new chunk's.
    __table_args__ = {"sqlite_autoincrement": True}

    # The full-text and vector indexes' rowid: an integer.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    document_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("knowledge_document.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int]
    text: Mapped[str] = mapped_column(Text)
    # Where it comes from: the PDF page (1-based), and the nearest heading above it.
    page: Mapped[int | None]
    section: Mapped[str | None] = mapped_column(String(300))


class CollectionGroup(Base):
    """A collection shared with a group: its members may use and search it (read only)."""

    __tablename__ = "collection_group"

    collection_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("collection.id", ondelete="CASCADE"), primary_key=True
    )
    # Indexed: a member's shared collections are found through their groups.
    group_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("user_group.id", ondelete="CASCADE"), primary_key=True, index=True
    )
