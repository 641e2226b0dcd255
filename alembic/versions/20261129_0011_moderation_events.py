"""moderation events: what the guardrails refused, redacted, flagged or let through

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29 23:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "moderation_event",
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("chat_id", sa.Uuid(), nullable=True),
        sa.Column("message_id", sa.Uuid(), nullable=True),
        sa.Column("generation_id", sa.Uuid(), nullable=True),
        sa.Column("point", sa.String(length=16), nullable=False),
        sa.Column("check", sa.String(length=32), nullable=False),
        sa.Column("category", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.Column("blocked_text", sa.Text(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_moderation_event_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_moderation_event")),
    )
    op.create_index(
        "ix_moderation_event_created", "moderation_event", ["created_at", "id"], unique=False
    )
    op.create_index(
        op.f("ix_moderation_event_user_id"), "moderation_event", ["user_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_moderation_event_user_id"), table_name="moderation_event")
    op.drop_index("ix_moderation_event_created", table_name="moderation_event")
    op.drop_table("moderation_event")
