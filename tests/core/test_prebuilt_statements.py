"""Statements built once at import, with bind parameters, for the hottest queries.

A bind parameter that takes its type from a column whose type is not known yet (a foreign key
whose target table is not imported yet) stays untyped: SQLite is then sent a raw uuid.UUID and
every request fails. Which modules are imported first decides it, so each module is checked in
a fresh interpreter where it is the first thing imported.
"""

import subprocess
import sys

import pytest

CHECK = """
import importlib, sys
from sqlalchemy.sql.sqltypes import NullType
module = importlib.import_module(sys.argv[1])
from app.chats.models import Message
from app.generation.models import Generation
statements = [getattr(module, name) for name in sys.argv[2:]]
for builder in ("_checkpoint_statement", "_finish_statement"):
    if hasattr(module, builder):
        statements += [getattr(module, builder)(table) for table in (Message, Generation)]
for statement in statements:
    binds = statement.compile().binds
    assert binds, statement
    untyped = [key for key, bind in binds.items() if isinstance(bind.type, NullType)]
    assert not untyped, untyped
"""

MODULES = {
    "app.auth.repository": ["_SESSION_WITH_USER"],
    "app.chats.repository": ["_OWNED_CHAT", "_THREAD_TO_LEAF", "_THREAD_TO_NEWEST"],
    "app.generation.repository": ["_STREAMING_IN_CHAT"],
    "app.usage.repository": ["_SETTLE"],
}


@pytest.mark.parametrize("module", MODULES)
def test_every_bind_parameter_has_a_type_whatever_is_imported_first(module: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", CHECK, module, *MODULES[module]], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
