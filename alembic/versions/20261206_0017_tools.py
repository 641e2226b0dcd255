"""tools: the tools a chat offers the model (chat.tool_ids), a reply's tool calls
(message.tool_steps), and admins' switches for tools and MCP servers (tool_setting)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06 06:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTER TABLE on both databases, so the tables' triggers and full-text indexes stay.
    op.add_column("chat", sa.Column("tool_ids", sa.JSON(), nullable=True))
    op.add_column("message", sa.Column("tool_steps", sa.JSON(none_as_null=True), nullable=True))
    op.create_table(
        "tool_setting",
        sa.Column("tool_id", sa.String(length=200), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tool_id", name=op.f("pk_tool_setting")),
    )


def downgrade() -> None:
    op.drop_table("tool_setting")
    op.drop_column("message", "tool_steps")
    op.drop_column("chat", "tool_ids")
