"""chats and messages

Chats, and their messages as a tree (parent_id, depth). Besides the tables' own indexes, search
over chat titles and message text gets an index per backend, created here only (env.py keeps
autogenerate from comparing them):

- Postgres: GIN indexes on to_tsvector('simple', ...) of chat.title and message.content, queried
  with word-prefix tsqueries (`word:*`).
- SQLite: FTS5 external-content tables chat_search and message_search over the same columns,
  kept in sync by triggers, queried with MATCH (`"word"*`). Their rowids are the rowids of chat
  and message; after a VACUUM (which may renumber them) run
  `INSERT INTO message_search(message_search) VALUES ('rebuild')`, and the same for chat_search.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 00:22:51.629449
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (FTS5 table, content table, indexed column) for SQLite; the same pairs get GIN indexes on
# Postgres. Keep in step with app/chats/search.py and SEARCH_OBJECTS in alembic/env.py.
SEARCHED = (("chat_search", "chat", "title"), ("message_search", "message", "content"))


def _sqlite_search_up() -> None:
    for fts, table, column in SEARCHED:
        op.execute(
            f"CREATE VIRTUAL TABLE {fts} USING fts5({column}, content='{table}', "
            "content_rowid='rowid', tokenize='unicode61 remove_diacritics 2')"
        )
        op.execute(
            f"CREATE TRIGGER {fts}_insert AFTER INSERT ON {table} BEGIN "
            f"INSERT INTO {fts}(rowid, {column}) VALUES (new.rowid, new.{column}); END"
        )
        op.execute(
            f"CREATE TRIGGER {fts}_delete AFTER DELETE ON {table} BEGIN "
            f"INSERT INTO {fts}({fts}, rowid, {column}) "
            f"VALUES ('delete', old.rowid, old.{column}); END"
        )
        op.execute(
            f"CREATE TRIGGER {fts}_update AFTER UPDATE OF {column} ON {table} BEGIN "
            f"INSERT INTO {fts}({fts}, rowid, {column}) "
            f"VALUES ('delete', old.rowid, old.{column}); "
            f"INSERT INTO {fts}(rowid, {column}) VALUES (new.rowid, new.{column}); END"
        )
        # Index whatever rows exist already (none on a fresh upgrade).
        op.execute(f"INSERT INTO {fts}({fts}) VALUES ('rebuild')")


def _sqlite_search_down() -> None:
    for fts, _table, _column in SEARCHED:
        for event in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS {fts}_{event}")
        op.execute(f"DROP TABLE IF EXISTS {fts}")


def _postgres_search_up() -> None:
    for fts, table, column in SEARCHED:
        op.create_index(
            f"ix_{fts}",
            table,
            [sa.text(f"to_tsvector('simple', {column})")],
            postgresql_using="gin",
        )


def _postgres_search_down() -> None:
    for fts, table, _column in SEARCHED:
        op.drop_index(f"ix_{fts}", table_name=table)


def upgrade() -> None:
    op.create_table(
        "chat",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=True),
        sa.Column("mode", sa.String(length=32), nullable=False),
        sa.Column("mode_params", sa.JSON(), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=True),
        sa.Column("system_prompt", sa.Text(), nullable=True),
        sa.Column("temperature", sa.Double(), nullable=True),
        sa.Column("top_p", sa.Double(), nullable=True),
        sa.Column("max_tokens", sa.Integer(), nullable=True),
        sa.Column("pinned", sa.Boolean(), nullable=False),
        sa.Column("archived", sa.Boolean(), nullable=False),
        sa.Column("last_message_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_chat_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat")),
    )
    with op.batch_alter_table("chat", schema=None) as batch_op:
        # The listing's order (pinned, last_message_at, id) after the user and archived filters:
        # first and deep pages are both a short index range scan.
        batch_op.create_index(
            "ix_chat_listing",
            ["user_id", "archived", "pinned", "last_message_at", "id"],
            unique=False,
        )

    op.create_table(
        "message",
        sa.Column("chat_id", sa.Uuid(), nullable=False),
        sa.Column("parent_id", sa.Uuid(), nullable=True),
        sa.Column("depth", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("completion_tokens", sa.Integer(), nullable=True),
        sa.Column("usage_estimated", sa.Boolean(), nullable=False),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("time_to_first_token_ms", sa.Integer(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("role IN ('system', 'user', 'assistant')", name=op.f("ck_message_role")),
        sa.CheckConstraint(
            "status IN ('complete', 'streaming', 'cancelled', 'failed', 'interrupted')",
            name=op.f("ck_message_status"),
        ),
        sa.ForeignKeyConstraint(
            ["chat_id"], ["chat.id"], name=op.f("fk_message_chat_id_chat"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["message.id"],
            name=op.f("fk_message_parent_id_message"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message")),
    )
    with op.batch_alter_table("message", schema=None) as batch_op:
        # The newest message of a chat (its current leaf) and export order.
        batch_op.create_index(
            "ix_message_chat_created", ["chat_id", "created_at", "id"], unique=False
        )
        # Thread pages of unbranched stretches, and root siblings.
        batch_op.create_index("ix_message_chat_depth", ["chat_id", "depth"], unique=False)
        # Siblings, and children found quickly when a cascade deletes their parent.
        batch_op.create_index(batch_op.f("ix_message_parent_id"), ["parent_id"], unique=False)

    dialect = op.get_context().dialect.name
    if dialect == "sqlite":
        _sqlite_search_up()
    elif dialect == "postgresql":
        _postgres_search_up()


def downgrade() -> None:
    dialect = op.get_context().dialect.name
    if dialect == "sqlite":
        _sqlite_search_down()
    elif dialect == "postgresql":
        _postgres_search_down()

    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_message_parent_id"))
        batch_op.drop_index("ix_message_chat_depth")
        batch_op.drop_index("ix_message_chat_created")

    op.drop_table("message")
    with op.batch_alter_table("chat", schema=None) as batch_op:
        batch_op.drop_index("ix_chat_listing")

    op.drop_table("chat")
