"""knowledge: collections, their files, ingested documents and chunks, the full-text index
(FTS5 / a stored tsvector with a GIN index) and, on Postgres with pgvector, the vector table; chat.collection_ids
and message.sources

The vector index on SQLite is sqlite-vec's vec0 table per dimension (knowledge_vec_<n>), made
by the app when it first indexes vectors of that length (app/knowledge/index.py): its dimension
is a setting, not part of the schema. On Postgres the vectors live in knowledge_embedding (a
`vector` column of any length, HNSW indexes per dimension made by the app), created here when
the pgvector extension is available; where it is not, this says so and retrieval on that
database is full text only (docs/knowledge.md).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 23:00:00.000000
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

logger = logging.getLogger("alembic.runtime.migration")


def upgrade() -> None:
    op.create_table(
        "collection",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_collection_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_collection")),
    )
    op.create_index("ix_collection_listing", "collection", ["user_id", "created_at", "id"])

    op.create_table(
        "knowledge_document",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("space", sa.String(length=300), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("chunk_count", sa.Integer(), nullable=False),
        sa.Column("page_count", sa.Integer(), nullable=True),
        sa.Column("cuts", sa.JSON(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.Uuid(), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('queued', 'processing', 'ready', 'failed')",
            name=op.f("ck_knowledge_document_status"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_knowledge_document_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_knowledge_document")),
        sa.UniqueConstraint("user_id", "sha256", "space", name="uq_knowledge_document_bytes"),
    )
    op.create_index("ix_knowledge_document_work", "knowledge_document", ["status", "lease_until"])

    op.create_table(
        "collection_file",
        sa.Column("collection_id", sa.Uuid(), nullable=False),
        sa.Column("file_id", sa.Uuid(), nullable=False),
        sa.Column("document_id", sa.Uuid(), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["collection.id"],
            name=op.f("fk_collection_file_collection_id_collection"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["knowledge_document.id"],
            name=op.f("fk_collection_file_document_id_knowledge_document"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["file_id"],
            ["file.id"],
            name=op.f("fk_collection_file_file_id_file"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("collection_id", "file_id", name=op.f("pk_collection_file")),
    )
    op.create_index("ix_collection_file_document_id", "collection_file", ["document_id"])
    op.create_index("ix_collection_file_file_id", "collection_file", ["file_id"])

    op.create_table(
        "knowledge_chunk",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("document_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("page", sa.Integer(), nullable=True),
        sa.Column("section", sa.String(length=300), nullable=True),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["knowledge_document.id"],
            name=op.f("fk_knowledge_chunk_document_id_knowledge_document"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_knowledge_chunk")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_knowledge_chunk_document_id", "knowledge_chunk", ["document_id"])

    # Plain ALTER TABLE, as in 0008: batch mode would rebuild chat and message on SQLite and
    # drop their full-text search triggers.
    op.add_column("chat", sa.Column("collection_ids", sa.JSON(), nullable=True))
    op.add_column("message", sa.Column("sources", sa.JSON(), nullable=True))

    if op.get_bind().dialect.name == "sqlite":
        _sqlite_full_text()
    else:
        _postgres_indexes()


def _sqlite_full_text() -> None:
    # External content: the text is stored once, in knowledge_chunk. Chunks are never updated,
    # only inserted and deleted (with their document).
    op.execute(
        "CREATE VIRTUAL TABLE knowledge_chunk_search USING fts5(text, "
        "content='knowledge_chunk', content_rowid='id', tokenize='porter unicode61')"
    )
    op.execute(
        "CREATE TRIGGER knowledge_chunk_search_insert AFTER INSERT ON knowledge_chunk BEGIN "
        "INSERT INTO knowledge_chunk_search(rowid, text) VALUES (new.id, new.text); END"
    )
    op.execute(
        "CREATE TRIGGER knowledge_chunk_search_delete AFTER DELETE ON knowledge_chunk BEGIN "
        "INSERT INTO knowledge_chunk_search(knowledge_chunk_search, rowid, text) "
        "VALUES ('delete', old.id, old.text); END"
    )


def _postgres_indexes() -> None:
    # A stored tsvector, not an expression index: ranking (ts_rank_cd) reads it instead of
    # parsing every matching chunk's text again (400 ms for 5,000 matches, measured).
    op.execute(
        "ALTER TABLE knowledge_chunk ADD COLUMN text_search tsvector"
        " GENERATED ALWAYS AS (to_tsvector('english', text)) STORED"
    )
    op.create_index(
        "ix_knowledge_chunk_search", "knowledge_chunk", ["text_search"], postgresql_using="gin"
    )
    bind = op.get_bind()
    available = bind.execute(
        sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
    ).first()
    if available is None:
        logger.warning(
            "pgvector is not installed on this Postgres server: knowledge retrieval here is "
            "full text only. Install pgvector and run `alembic downgrade 0008 && alembic "
            "upgrade head` (or see docs/knowledge.md) to get vector search."
        )
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    # `vector` without a length: the dimension is a setting. HNSW indexes need one, so the app
    # makes one partial expression index per dimension (app/knowledge/index.py).
    op.execute(
        "CREATE TABLE knowledge_embedding ("
        " chunk_id BIGINT PRIMARY KEY"
        "  REFERENCES knowledge_chunk (id) ON DELETE CASCADE,"
        " user_id UUID NOT NULL,"
        " dimensions INTEGER NOT NULL,"
        " embedding vector NOT NULL)"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for event in ("insert", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS knowledge_chunk_search_{event}")
        op.execute("DROP TABLE IF EXISTS knowledge_chunk_search")
        bind = op.get_bind()
        vec_tables = bind.execute(
            sa.text(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name LIKE 'knowledge\\_vec\\_%' ESCAPE '\\' AND sql LIKE '%vec0%'"
            )
        ).scalars()
        for name in list(vec_tables):
            op.execute(f'DROP TABLE IF EXISTS "{name}"')
    else:
        # The extension stays: other databases objects may use it, and it is harmless.
        op.execute("DROP TABLE IF EXISTS knowledge_embedding")
        op.drop_index("ix_knowledge_chunk_search", table_name="knowledge_chunk")
        op.drop_column("knowledge_chunk", "text_search")
    op.drop_column("message", "sources")
    op.drop_column("chat", "collection_ids")
    op.drop_index("ix_knowledge_chunk_document_id", table_name="knowledge_chunk")
    op.drop_table("knowledge_chunk")
    op.drop_index("ix_collection_file_file_id", table_name="collection_file")
    op.drop_index("ix_collection_file_document_id", table_name="collection_file")
    op.drop_table("collection_file")
    op.drop_index("ix_knowledge_document_work", table_name="knowledge_document")
    op.drop_table("knowledge_document")
    op.drop_index("ix_collection_listing", table_name="collection")
    op.drop_table("collection")
