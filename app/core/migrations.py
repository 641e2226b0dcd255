"""What Alembic's autogenerate compares, shared by env.py and the drift test."""

from typing import Any

# Search objects that exist only in migrations, per backend (see 0002): SQLite FTS5 tables (and
# their shadow tables, named <table>_data, _idx, ...) and Postgres GIN expression indexes.
# Models cannot declare them, so autogenerate must not compare them (or it would drop them).
# The knowledge index adds its FTS5 table / GIN index (knowledge_chunk_search), and its vector
# index: sqlite-vec vec0 tables per dimension (knowledge_vec_<n>, made at run time) on SQLite,
# the pgvector table (knowledge_embedding, where the extension is available) on Postgres.
SEARCH_OBJECTS = (
    "chat_search",
    "message_search",
    "knowledge_chunk_search",
    "knowledge_vec",
    "knowledge_embedding",
)


def include_name(name: str | None, type_: str, _parent_names: Any) -> bool:
    if name is None or type_ not in ("table", "index"):
        return True
    bare = name.removeprefix("ix_")
    return not any(bare == base or bare.startswith(f"{base}_") for base in SEARCH_OBJECTS)


# Columns that exist only in migrations: Postgres' generated tsvector of knowledge chunks.
MIGRATION_ONLY_COLUMNS = {("knowledge_chunk", "text_search")}


def include_object(
    object_: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    if type_ == "column":
        table = getattr(getattr(object_, "table", None), "name", None)
        return (table, name) not in MIGRATION_ONLY_COLUMNS
    return not (type_ == "table" and name == "alembic_version")
