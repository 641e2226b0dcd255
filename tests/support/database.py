"""The test run's database: which backend (TEST_DATABASE), making and dropping a fresh one, and
migrating it with alembic (the schema always comes from `alembic upgrade head`).

TEST_DATABASE=sqlite (default) or postgres picks the backend. With CI=true an unreachable
Postgres fails the run instead of skipping it.
"""

import asyncio
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic.config import Config

from alembic import command

ROOT = Path(__file__).resolve().parents[2]
BACKEND = os.environ.get("TEST_DATABASE", "sqlite")
POSTGRES_ADMIN_DSN = os.environ.get(
    "TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def run_in_thread(function: Callable[[], Any]) -> None:
    """Alembic's env.py calls asyncio.run(); give it a thread with no running loop."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            function()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def alembic_config(database_url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "alembic"))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logger"] = False
    return config


def migrate(database_url: str, revision: str = "head", *, down: bool = False) -> None:
    config = alembic_config(database_url)
    if down:
        run_in_thread(lambda: command.downgrade(config, revision))
    else:
        run_in_thread(lambda: command.upgrade(config, revision))


async def postgres_admin(statement: str) -> None:
    connection = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@dataclass
class TestDatabase:
    __test__ = False  # not a test class, whatever its name says

    url: str
    backend: str


def create_database(tmp_root: Path) -> tuple[TestDatabase, Callable[[], None]]:
    """A new, empty database on the run's backend, and the function that drops it."""
    name = f"parley_test_{uuid.uuid4().hex[:12]}"
    if BACKEND == "sqlite":
        path = tmp_root / f"{name}.db"
        return TestDatabase(f"sqlite+aiosqlite:///{path}", "sqlite"), lambda: None
    if BACKEND != "postgres":
        raise pytest.UsageError(f"TEST_DATABASE must be sqlite or postgres, not {BACKEND!r}")
    try:
        run_in_thread(lambda: asyncio.run(postgres_admin(f'CREATE DATABASE "{name}"')))
        # Commits of the test database do not wait for the disk (a crash could lose the last
        # ones, which no test cares about); the server's other databases are untouched.
        run_in_thread(
            lambda: asyncio.run(
                postgres_admin(f'ALTER DATABASE "{name}" SET synchronous_commit TO off')
            )
        )
    except (OSError, asyncpg.PostgresError) as exc:
        message = f"Postgres at {POSTGRES_ADMIN_DSN} is unreachable: {exc!r}"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0]

    def drop() -> None:
        asyncio.run(postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    return TestDatabase(f"postgresql+asyncpg://{base.split('://', 1)[1]}/{name}", "postgres"), drop
