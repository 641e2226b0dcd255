"""knowledge vector codes: beside each SQLite vec0 table knowledge_vec_<n>, a table of the
vectors' 7-bit-per-dimension codes (knowledge_vec_<n>_code, Hamming-searched for candidates that
the float vectors rank exactly; app/knowledge/codes.py), filled here for the vectors already
indexed. Postgres (pgvector's HNSW index) is unchanged.

The quantiser is a frozen copy of app/knowledge/codes.py's `quantize` as of this revision, so
this migration codes vectors the same way whatever the app's code becomes.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05 21:30:00.000000
"""

import math
import re
import struct
from bisect import bisect_right
from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_THRESHOLDS = (-1.1503, -0.6745, -0.3186, 0.0, 0.3186, 0.6745, 1.1503)
_THERMOMETER = tuple("1" * level + "0" * (7 - level) for level in range(8))
_VECTOR_TABLE = re.compile(r"knowledge_vec_(\d+)")
# vec0 scans the table for each batch (it has no range lookup on chunk_id): large batches.
_BATCH = 5000


def _code_bits(dimensions: int) -> int:
    return (dimensions * 7 + 7) // 8 * 8


def _quantize(vector: Sequence[float]) -> bytes:
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    scale = math.sqrt(len(vector)) / norm
    bits = "".join(_THERMOMETER[bisect_right(_THRESHOLDS, x * scale)] for x in vector)
    length = _code_bits(len(vector))
    return int(bits.ljust(length, "0"), 2).to_bytes(length // 8, "big")


def _vec0_tables(bind: sa.engine.Connection) -> list[str]:
    return list(
        bind.execute(
            sa.text(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name LIKE 'knowledge\\_vec\\_%' ESCAPE '\\' AND sql LIKE '%vec0%'"
            )
        ).scalars()
    )


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    for table in _vec0_tables(bind):
        found = _VECTOR_TABLE.fullmatch(table)
        if found is None:
            continue
        dimensions = int(found.group(1))
        code_table = f"{table}_code"
        op.execute(
            f"CREATE VIRTUAL TABLE IF NOT EXISTS {code_table} USING vec0("
            "chunk_id INTEGER PRIMARY KEY, "
            f"embedding bit[{_code_bits(dimensions)}], "
            "user_id TEXT PARTITION KEY)"
        )
        after = -1
        while True:
            rows = bind.execute(
                sa.text(
                    f"SELECT chunk_id, embedding, user_id FROM {table}"
                    " WHERE chunk_id > :after ORDER BY chunk_id LIMIT :batch"
                ),
                {"after": after, "batch": _BATCH},
            ).all()
            if not rows:
                break
            bind.execute(
                sa.text(
                    f"INSERT INTO {code_table} (chunk_id, embedding, user_id)"
                    " VALUES (:c, vec_bit(:e), :u)"
                ),
                [
                    {
                        "c": int(chunk_id),
                        "e": _quantize(struct.unpack(f"{dimensions}f", bytes(blob))),
                        "u": user_id,
                    }
                    for chunk_id, blob, user_id in rows
                ],
            )
            after = int(rows[-1][0])


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    for table in _vec0_tables(bind):
        if table.endswith("_code"):
            op.execute(f'DROP TABLE IF EXISTS "{table}"')
