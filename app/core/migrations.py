"""What Alembic's autogenerate compares, shared by env.py and the drift test."""

from typing import Any

# Objects that exist only in migrations (search indexes, triggers) and not in the models.
MIGRATION_ONLY_NAMES: frozenset[str] = frozenset()


def include_object(
    object_: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    if name in MIGRATION_ONLY_NAMES:
        return False
    return not (type_ == "table" and name == "alembic_version")
