"""Only repositories write SQL: no module of app/ but a repository (a file named repository.py, or
one in a repositories/ package) and app/core/db.py imports SQLAlchemy's insert, update or delete
(the dialects' too), or writes an INSERT, UPDATE, DELETE, REPLACE, MERGE or TRUNCATE statement
in its SQL text (in capitals, as Parley writes SQL; lower case is taken for prose). Alembic's
migrations, outside app/, write what they like. Read from the source with ast.

Services and everything else change rows through a repository's methods (or the ORM's session),
so that every write a request makes can be found in one kind of file.
"""

import ast
import re
from pathlib import Path

APP = Path(__file__).resolve().parents[2] / "app"
ROOT = APP.parent

ALLOWED = {"app/core/db.py"}

# Writes outside repositories when this test was written, to be moved into repositories by work
# in progress: "path: what" as the test reports it. Delete an entry when its write has moved (the
# test says so); add none.
KNOWN_VIOLATIONS: set[str] = {
    # The knowledge index's vectors (vec0 on SQLite, pgvector on Postgres), in raw SQL.
    "app/knowledge/index.py: DELETE in SQL text",
    "app/knowledge/index.py: INSERT in SQL text",
}

WRITE_CONSTRUCTS = {"insert", "update", "delete"}
DML = re.compile(
    r"\b(INSERT\s+(?:OR\s+\w+\s+)?INTO|UPDATE\s+\S+\s+SET|DELETE\s+FROM|REPLACE\s+INTO"
    r"|MERGE\s+INTO|TRUNCATE)\b"
)


def is_repository(path: Path) -> bool:
    relative = path.relative_to(ROOT)
    return path.name == "repository.py" or "repositories" in relative.parts[:-1]


def _docstrings(tree: ast.Module) -> set[int]:
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def writes_in(source: str) -> set[str]:
    """What in `source` writes SQL: imported write constructs, DML in string literals (docstrings
    aside; an f-string's literal parts count)."""
    tree = ast.parse(source)
    docstrings = _docstrings(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "sqlalchemy":
            for alias in node.names:
                if alias.name in WRITE_CONSTRUCTS:
                    found.add(f"imports {node.module}.{alias.name}")
        elif isinstance(node, ast.Attribute) and node.attr in WRITE_CONSTRUCTS:
            # sqlalchemy.insert(...) or sa.delete(...) through a module
            if isinstance(node.value, ast.Name) and node.value.id in ("sa", "sqlalchemy"):
                found.add(f"uses {node.value.id}.{node.attr}")
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
        ):
            for match in DML.finditer(node.value):
                found.add(f"{match.group(1).split()[0]} in SQL text")
    return found


def violations() -> set[str]:
    found: set[str] = set()
    for path in sorted(APP.rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if is_repository(path) or relative in ALLOWED:
            continue
        found.update(f"{relative}: {what}" for what in writes_in(path.read_text()))
    return found


def test_only_repositories_write_sql() -> None:
    new = sorted(violations() - KNOWN_VIOLATIONS)
    assert not new, "SQL writes outside a repository (move them into one):\n" + "\n".join(new)


def test_known_violations_still_exist() -> None:
    gone = sorted(KNOWN_VIOLATIONS - violations())
    assert not gone, f"these writes are gone: delete them from KNOWN_VIOLATIONS: {gone}"


class TestTheReader:
    """Guards the check itself."""

    def test_finds_write_constructs_and_dml(self) -> None:
        source = (
            "from sqlalchemy import select, update\n"
            "from sqlalchemy.dialects.postgresql import insert\n"
            "import sqlalchemy as sa\n"
            "STATEMENT = 'DELETE FROM chat WHERE id = :id'\n"
            "def f(table):\n"
            "    sa.delete(table)\n"
            "    return text(f'INSERT INTO {table} VALUES (1)')\n"
        )
        assert writes_in(source) == {
            "imports sqlalchemy.update",
            "imports sqlalchemy.dialects.postgresql.insert",
            "uses sa.delete",
            "DELETE in SQL text",
            "INSERT in SQL text",
        }

    def test_reads_and_prose_are_not_writes(self) -> None:
        source = (
            '"""Marks replies: an UPDATE of the message table, in the repository."""\n'
            "from sqlalchemy import select, text\n"
            "QUERY = text('SELECT id FROM chat WHERE updated_at > :since')\n"
            "MESSAGE = 'could not delete from storage'\n"
        )
        assert writes_in(source) == set()

    def test_repositories_are_recognised(self) -> None:
        assert is_repository(APP / "chats" / "repository.py")
        assert is_repository(APP / "knowledge" / "repositories" / "chunks.py")
        assert not is_repository(APP / "chats" / "service.py")
