"""Services hold a unit of work (app/core/uow.py), never a session: every SQL statement is a
repository's, and only the unit of work commits. This reads the code, so a service that reaches
for a session again fails here, naming the line."""

import ast
from pathlib import Path

APP = Path(__file__).resolve().parents[2] / "app"
# The modules holding business rules (the services and the pipeline's stages).
SERVICE_MODULES = sorted(
    [
        *APP.glob("*/service.py"),
        *(APP / "auth").glob("[agmn]*.py"),  # account, guard, mfa, notifications
        APP / "generation" / "summaries.py",
        *(APP / "generation" / "pipeline").rglob("*.py"),
    ]
)
SESSION_CALLS = {
    "add",
    "begin_nested",
    "commit",
    "delete",
    "execute",
    "flush",
    "get",
    "rollback",
    "scalar",
    "scalars",
}


def session_uses(path: Path, root: Path = APP.parent) -> list[str]:
    found = []
    name = path.relative_to(root)
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and any(a.name == "AsyncSession" for a in node.names):
            found.append(f"{name}:{node.lineno} imports AsyncSession")
        if (
            isinstance(node, ast.Attribute)
            and node.attr in SESSION_CALLS
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "session"
        ):
            found.append(f"{name}:{node.lineno} calls .session.{node.attr}")
    return found


def test_the_rule_sees_the_modules_it_guards():
    names = {path.relative_to(APP).as_posix() for path in SERVICE_MODULES}
    assert {"chats/service.py", "generation/service.py", "auth/guard.py"} <= names
    assert "generation/pipeline/stages/retrieval.py" in names


def test_services_never_touch_a_session():
    offences = [use for path in SERVICE_MODULES for use in session_uses(path)]
    assert offences == []


def test_the_check_catches_a_reach_in(tmp_path):
    module = tmp_path / "service.py"
    module.write_text("async def f(self):\n    await self.users.session.flush()\n")
    assert session_uses(module, tmp_path) == ["service.py:2 calls .session.flush"]
