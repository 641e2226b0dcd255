"""projects, tags, share links and the prompt library: the project and prompt tables, chats'
project_id, their tags (chat_tag) and their public links (chat_share)

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-06 06:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _timestamps() -> list[sa.Column[object]]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "project",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("instructions", sa.Text(), nullable=True),
        sa.Column("model", sa.String(length=100), nullable=True),
        sa.Column("collection_ids", sa.JSON(), nullable=True),
        sa.Column("tool_ids", sa.JSON(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_project_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_project")),
    )
    op.create_index(op.f("ix_project_user_id"), "project", ["user_id"], unique=False)

    # Not batch mode: rebuilding the chat table on SQLite would drop its full-text triggers.
    # SQLite adds a column with an inline REFERENCES clause; Postgres gets a named constraint.
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "ALTER TABLE chat ADD COLUMN project_id CHAR(32) CONSTRAINT fk_chat_project_id_project "
            "REFERENCES project (id)"
        )
    else:
        op.add_column("chat", sa.Column("project_id", sa.Uuid(), nullable=True))
        op.create_foreign_key(
            op.f("fk_chat_project_id_project"),
            "chat",
            "project",
            ["project_id"],
            ["id"],
        )
    op.create_index("ix_chat_project_id", "chat", ["project_id"], unique=False)
    op.add_column("chat", sa.Column("tags", sa.JSON(), nullable=True))

    op.create_table(
        "chat_tag",
        sa.Column("chat_id", sa.Uuid(), nullable=False),
        sa.Column("tag", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["chat_id"], ["chat.id"], name=op.f("fk_chat_tag_chat_id_chat"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_chat_tag_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("chat_id", "tag", name=op.f("pk_chat_tag")),
    )
    op.create_index("ix_chat_tag_user_tag", "chat_tag", ["user_id", "tag"], unique=False)

    op.create_table(
        "chat_share",
        sa.Column("chat_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("token_salt", sa.String(length=64), nullable=False),
        sa.Column("last_message_id", sa.Uuid(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["chat_id"], ["chat.id"], name=op.f("fk_chat_share_chat_id_chat"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["last_message_id"],
            ["message.id"],
            name=op.f("fk_chat_share_last_message_id_message"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_chat_share_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_share")),
        sa.UniqueConstraint("chat_id", name=op.f("uq_chat_share_chat_id")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_chat_share_token_hash")),
    )
    op.create_index(op.f("ix_chat_share_user_id"), "chat_share", ["user_id"], unique=False)

    op.create_table(
        "prompt",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("command", sa.String(length=32), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_prompt_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prompt")),
        sa.UniqueConstraint("user_id", "command", name="uq_prompt_command"),
    )


def downgrade() -> None:
    op.drop_table("prompt")
    op.drop_index(op.f("ix_chat_share_user_id"), table_name="chat_share")
    op.drop_table("chat_share")
    op.drop_index("ix_chat_tag_user_tag", table_name="chat_tag")
    op.drop_table("chat_tag")
    op.drop_column("chat", "tags")
    op.drop_index("ix_chat_project_id", table_name="chat")
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint(op.f("fk_chat_project_id_project"), "chat", type_="foreignkey")
    # SQLite 3.35+ drops a column in place, but not one a REFERENCES clause names: the
    # constraint goes with the column here.
    op.drop_column("chat", "project_id")
    op.drop_index(op.f("ix_project_user_id"), table_name="project")
    op.drop_table("project")
