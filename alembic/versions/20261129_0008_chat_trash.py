"""chat trash: chat.deleted_at, set when a chat is moved to the trash

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 21:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Plain ALTER TABLE on both databases (SQLite 3.35+ drops columns): batch mode would rebuild the
# chat table on SQLite, dropping its full-text search triggers and renumbering the rowids that
# chat_search points at.


def upgrade() -> None:
    op.add_column("chat", sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_chat_deleted_at", "chat", ["deleted_at"], unique=False)


def downgrade() -> None:
    # Chats in the trash were deleted by their owners: the downgrade deletes them for good
    # rather than bringing them back into their lists. Migrations run SQLite with foreign keys
    # off, so what ON DELETE would do is done here.
    trashed = "SELECT id FROM chat WHERE deleted_at IS NOT NULL"
    messages = f"SELECT id FROM message WHERE chat_id IN ({trashed})"
    op.execute(f"UPDATE usage_record SET message_id = NULL WHERE message_id IN ({messages})")
    op.execute(f"DELETE FROM message WHERE chat_id IN ({trashed})")
    op.execute("DELETE FROM chat WHERE deleted_at IS NOT NULL")
    op.drop_index("ix_chat_deleted_at", table_name="chat")
    op.drop_column("chat", "deleted_at")
