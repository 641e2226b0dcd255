"""groups: groups of users (restricted models, a quota per member, group admins), restricted
models, and collections shared with groups

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06 06:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "user_group",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("models", sa.JSON(), nullable=False),
        sa.Column("daily_token_quota", sa.Integer(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_group")),
        sa.UniqueConstraint("name", name=op.f("uq_user_group_name")),
    )
    for table in ("group_member", "group_admin"):
        columns = [
            sa.Column("group_id", sa.Uuid(), nullable=False),
            sa.Column("user_id", sa.Uuid(), nullable=False),
        ]
        if table == "group_member":
            columns.append(sa.Column("added_at", sa.DateTime(timezone=True), nullable=False))
        op.create_table(
            table,
            *columns,
            sa.ForeignKeyConstraint(
                ["group_id"],
                ["user_group.id"],
                name=op.f(f"fk_{table}_group_id_user_group"),
                ondelete="CASCADE",
            ),
            sa.ForeignKeyConstraint(
                ["user_id"],
                ["user_account.id"],
                name=op.f(f"fk_{table}_user_id_user_account"),
                ondelete="CASCADE",
            ),
            sa.PrimaryKeyConstraint("group_id", "user_id", name=op.f(f"pk_{table}")),
        )
        op.create_index(op.f(f"ix_{table}_user_id"), table, ["user_id"], unique=False)
    op.create_table(
        "restricted_model",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("restricted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_restricted_model")),
    )
    op.create_table(
        "collection_group",
        sa.Column("collection_id", sa.Uuid(), nullable=False),
        sa.Column("group_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["collection_id"],
            ["collection.id"],
            name=op.f("fk_collection_group_collection_id_collection"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["user_group.id"],
            name=op.f("fk_collection_group_group_id_user_group"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("collection_id", "group_id", name=op.f("pk_collection_group")),
    )
    op.create_index(
        op.f("ix_collection_group_group_id"), "collection_group", ["group_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_collection_group_group_id"), table_name="collection_group")
    op.drop_table("collection_group")
    op.drop_table("restricted_model")
    for table in ("group_admin", "group_member"):
        op.drop_index(op.f(f"ix_{table}_user_id"), table_name=table)
        op.drop_table(table)
    op.drop_table("user_group")
