"""served by: the model and deployment that answered a reply (message, generation), and the
deployment a usage record was served by (routing across deployments)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06 03:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTER TABLE on both databases (SQLite 3.35+ drops columns in place), so the tables'
    # triggers and full-text indexes stay as they are.
    op.add_column("message", sa.Column("served_by", sa.JSON(none_as_null=True), nullable=True))
    op.add_column("generation", sa.Column("served_by", sa.JSON(none_as_null=True), nullable=True))
    op.add_column("usage_record", sa.Column("deployment", sa.String(length=200), nullable=True))


def downgrade() -> None:
    op.drop_column("usage_record", "deployment")
    op.drop_column("generation", "served_by")
    op.drop_column("message", "served_by")
