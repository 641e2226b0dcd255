"""message attachments: files linked to user messages, documents' extracted text, and what a
reply's prompt left out

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 21:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "message_attachment",
        sa.Column("message_id", sa.Uuid(), nullable=False),
        sa.Column("file_id", sa.Uuid(), nullable=False),
        sa.Column("chat_id", sa.Uuid(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["chat_id"],
            ["chat.id"],
            name=op.f("fk_message_attachment_chat_id_chat"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["file_id"],
            ["file.id"],
            name=op.f("fk_message_attachment_file_id_file"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["message.id"],
            name=op.f("fk_message_attachment_message_id_message"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_id", "file_id", name=op.f("pk_message_attachment")),
    )
    with op.batch_alter_table("message_attachment", schema=None) as batch_op:
        batch_op.create_index("ix_message_attachment_chat_id", ["chat_id"], unique=False)
        batch_op.create_index("ix_message_attachment_file_id", ["file_id"], unique=False)

    op.create_table(
        "file_text",
        sa.Column("file_id", sa.Uuid(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("truncated", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["file_id"], ["file.id"], name=op.f("fk_file_text_file_id_file"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("file_id", name=op.f("pk_file_text")),
    )

    # Plain ADD COLUMN (nullable, no default) on both backends: SQLite does it in place, so the
    # message table (and the rowids its search index refers to) is not rebuilt.
    op.add_column("message", sa.Column("context_cuts", sa.JSON(), nullable=True))
    op.add_column("generation", sa.Column("attachments", sa.JSON(), nullable=True))
    op.add_column("generation", sa.Column("context_cuts", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("generation", "context_cuts")
    op.drop_column("generation", "attachments")
    op.drop_column("message", "context_cuts")
    op.drop_table("file_text")
    with op.batch_alter_table("message_attachment", schema=None) as batch_op:
        batch_op.drop_index("ix_message_attachment_file_id")
        batch_op.drop_index("ix_message_attachment_chat_id")
    op.drop_table("message_attachment")
