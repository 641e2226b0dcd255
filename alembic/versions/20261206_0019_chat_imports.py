"""chat imports: the source and the source's conversation id of an imported chat, unique per
user, so that importing the same conversation again changes nothing

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-06 05:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTER TABLE on both databases, so the chat table's triggers and full-text index stay.
    op.add_column("chat", sa.Column("import_source", sa.String(length=16), nullable=True))
    op.add_column("chat", sa.Column("import_id", sa.String(length=200), nullable=True))
    # Chats not imported have nulls, which a unique index never counts as equal.
    op.create_index(
        "uq_chat_import", "chat", ["user_id", "import_source", "import_id"], unique=True
    )


def downgrade() -> None:
    op.drop_index("uq_chat_import", table_name="chat")
    op.drop_column("chat", "import_id")
    op.drop_column("chat", "import_source")
