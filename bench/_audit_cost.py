"""The audit event's own CPU, measured in one process (bench/request_cost.py's last rows).

Across processes, a 0.1 ms difference drowns in what else the machine does: two identical
Parleys measured side by side differ by up to 0.4 ms per sign-in on a loaded machine. So this
also measures the work an event adds, directly: the same short transaction (a session row's
update, like a sign-in's) run with and without `audit.record()`, in alternating rounds, in a
request context; the events are then written by the batched writer, whose CPU is included. The
median round's difference per event is the figure.
"""

import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sqlalchemy import text

from app import audit
from app.audit import actions
from app.audit.writer import AuditWriter
from app.core.clientip import ClientIPResolver
from app.core.config import Settings
from app.core.db import Database
from app.core.logging import request_id_var, request_scope_var, user_id_var
from app.core.uow import UnitOfWork
from app.models import Base


async def _measure(events: int, rounds: int) -> list[float]:
    folder = Path(tempfile.mkdtemp(prefix="parley-audit-cost-"))
    settings = Settings(
        _env_file=None,
        database_url=f"sqlite+aiosqlite:///{folder / 'audit.db'}",
        secret_key="audit-cost-bench-secret-key-0123456789abcdef",
    )
    db = Database(settings)
    async with db.engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
        await connection.execute(text("CREATE TABLE touch (id INTEGER PRIMARY KEY, n INTEGER)"))
        await connection.execute(text("INSERT INTO touch VALUES (1, 0)"))
    writer = AuditWriter(db)
    runtime = SimpleNamespace(client_ips=ClientIPResolver([]), audit_writer=writer)
    scope: dict[str, Any] = {
        "type": "http",
        "headers": [(b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64) bench")],
        "client": ("203.0.113.7", 50000),
        "app": SimpleNamespace(state=SimpleNamespace(runtime=runtime)),
    }
    request_scope_var.set(scope)
    user = uuid.uuid4()

    async def transactions(with_event: bool) -> float:
        started = time.process_time()
        for _ in range(events):
            request_id_var.set(uuid.uuid4().hex)
            user_id_var.set(None)
            async with db.transaction() as session:
                uow = UnitOfWork(session)
                await session.execute(text("UPDATE touch SET n = n + 1 WHERE id = 1"))
                if with_event:
                    await audit.record(
                        uow,
                        actions.SIGN_IN,
                        actor=user,
                        target=audit.Target("user", user),
                        details={"method": "password"},
                    )
        if with_event:
            await writer.flush()
        return time.process_time() - started

    differences = []
    try:
        await transactions(True)  # warm-up
        await transactions(False)
        for round_ in range(rounds):
            order = (True, False) if round_ % 2 == 0 else (False, True)
            spent = {kind: await transactions(kind) for kind in order}
            differences.append((spent[True] - spent[False]) / events)
    finally:
        await db.dispose()
    return differences


def audit_event_cpu(events: int = 500, rounds: int = 10) -> float:
    """The median round's CPU seconds one audit event adds to a transaction."""
    return statistics.median(asyncio.run(_measure(events, rounds)))
