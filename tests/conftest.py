"""Test fixtures: one database per test run (and per xdist worker), built by `alembic upgrade head`.

TEST_DATABASE=sqlite (default) or postgres picks the backend. With CI=true an unreachable
Postgres fails the run instead of skipping it.
"""

import asyncio
import os
import tempfile
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from alembic.config import Config
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from alembic import command
from app.core.config import Settings
from app.core.db import create_engine
from app.core.deps import Runtime
from app.main import create_app
from app.models import Base
from tests.support.smtp_server import SMTPTestServer, running_smtp_server

pytest_plugins = ["tests.support.upstream_fixtures"]

ROOT = Path(__file__).resolve().parent.parent
BACKEND = os.environ.get("TEST_DATABASE", "sqlite")
POSTGRES_ADMIN_DSN = os.environ.get(
    "TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PASSWORD = "correct horse battery staple 42"
TEST_FILE_STORAGE = Path(tempfile.gettempdir()) / f"parley-test-files-{os.getpid()}"

# Every test client comes from 127.0.0.1: ordinary tests must never trip a rate limit, so the
# default test settings raise them all; the rate-limit tests set low ones explicitly.
HIGH_LIMIT = "10000/minute"
RATE_LIMIT_SETTINGS = {
    name: HIGH_LIMIT
    for name in Settings.model_fields
    if name.startswith("rate_limit_")
    and name not in ("rate_limit_enabled", "rate_limit_strategy", "rate_limit_key_prefix")
}


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


async def _postgres_admin(statement: str) -> None:
    connection = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@dataclass
class TestDatabase:
    url: str
    backend: str


def _create_database(tmp_root: Path) -> tuple[TestDatabase, Callable[[], None]]:
    name = f"parley_test_{uuid.uuid4().hex[:12]}"
    if BACKEND == "sqlite":
        path = tmp_root / f"{name}.db"
        return TestDatabase(f"sqlite+aiosqlite:///{path}", "sqlite"), lambda: None
    if BACKEND != "postgres":
        raise pytest.UsageError(f"TEST_DATABASE must be sqlite or postgres, not {BACKEND!r}")
    try:
        run_in_thread(lambda: asyncio.run(_postgres_admin(f'CREATE DATABASE "{name}"')))
        # Commits of the test database do not wait for the disk (a crash could lose the last
        # ones, which no test cares about); the server's other databases are untouched.
        run_in_thread(
            lambda: asyncio.run(
                _postgres_admin(f'ALTER DATABASE "{name}" SET synchronous_commit TO off')
            )
        )
    except (OSError, asyncpg.PostgresError) as exc:
        message = f"Postgres at {POSTGRES_ADMIN_DSN} is unreachable: {exc!r}"
        if IN_CI:
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0]

    def drop() -> None:
        asyncio.run(_postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    return TestDatabase(f"postgresql+asyncpg://{base.split('://', 1)[1]}/{name}", "postgres"), drop


@pytest.fixture(scope="session")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestDatabase]:
    """A fresh database for this run, migrated to head, dropped at the end."""
    db, drop = _create_database(tmp_path_factory.mktemp("db"))
    try:
        migrate(db.url)
        yield db
    finally:
        run_in_thread(drop)


@pytest.fixture(scope="session")
def empty_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestDatabase]:
    """A second fresh database with no tables, for migration tests."""
    db, drop = _create_database(tmp_path_factory.mktemp("empty"))
    try:
        yield db
    finally:
        run_in_thread(drop)


def make_settings(database: TestDatabase, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": database.url,
        "secret_key": "test-secret-key-that-is-long-enough-0123456789",
        "bcrypt_rounds": 4,
        "log_json": True,
        "log_level": "WARNING",
        "db_pool_size": 5,
        # Uploads of tests that do not choose a directory stay out of the working tree.
        "file_storage_dir": str(TEST_FILE_STORAGE),
        **RATE_LIMIT_SETTINGS,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@pytest.fixture
def settings(database: TestDatabase, clean_db: AsyncEngine) -> Settings:
    return make_settings(database)


@pytest.fixture(scope="session")
async def admin_engine(database: TestDatabase) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(make_settings(database))
    yield engine
    await engine.dispose()


@pytest.fixture
async def clean_db(admin_engine: AsyncEngine) -> AsyncEngine:
    """Empties every table, so each test starts from nothing whatever ran before it."""
    tables = [table.name for table in reversed(Base.metadata.sorted_tables)]
    async with admin_engine.begin() as connection:
        # DELETE, children first: on Postgres a TRUNCATE of every table costs ~90 ms (new files
        # for each), a DELETE of the few rows a test leaves well under one.
        for name in tables:
            await connection.execute(text(f'DELETE FROM "{name}"'))
    return admin_engine


@pytest.fixture
def smtp_server() -> Iterator[SMTPTestServer]:
    """A real SMTP server (aiosmtpd) on a free loopback port; read mails with `wait_for`."""
    with running_smtp_server() as server:
        yield server


def smtp_settings(server: SMTPTestServer) -> dict[str, Any]:
    """Settings overrides that send the app's mail to `server`."""
    return {
        "smtp_host": server.host,
        "smtp_port": server.port,
        "smtp_security": "none",
        "smtp_from": "Parley <no-reply@parley.test>",
        "public_base_url": "https://parley.test",
    }


@pytest.fixture
def mail_settings(
    database: TestDatabase, clean_db: AsyncEngine, smtp_server: SMTPTestServer
) -> Settings:
    """The default test settings, with mail going to the `smtp_server` fixture."""
    return make_settings(database, **smtp_settings(smtp_server))


def runtime_of(app: FastAPI) -> Runtime:
    runtime: Runtime = app.state.runtime
    return runtime


async def settle(app: FastAPI) -> None:
    """Waits for the app's background work: jobs first (they queue mails), then the mails."""
    runtime = runtime_of(app)
    await runtime.jobs.drain()
    await runtime.mailer.drain()


async def start_app(settings: Settings) -> tuple[FastAPI, Any]:
    app = create_app(settings)
    lifespan = app.router.lifespan_context(app)
    await lifespan.__aenter__()
    return app, lifespan


@asynccontextmanager
async def serving(
    settings: Settings, *, base_url: str = "http://testserver"
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """An app with its own settings (lifespan run) and a client for it."""
    application, lifespan = await start_app(settings)
    try:
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as http:
            yield application, http
    finally:
        await lifespan.__aexit__(None, None, None)


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application, lifespan = await start_app(settings)
    try:
        yield application
    finally:
        await lifespan.__aexit__(None, None, None)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@dataclass
class SignedInUser:
    email: str
    password: str
    access_token: str
    refresh_token: str
    session_id: str
    user_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


async def register(
    client: httpx.AsyncClient,
    *,
    email: str | None = None,
    password: str = PASSWORD,
    display_name: str = "Ada Lovelace",
) -> SignedInUser:
    email = email or f"user-{uuid.uuid4().hex[:10]}@example.com"
    response = await client.post(
        "/api/auth/register",
        json={"email": email, "display_name": display_name, "password": password},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    client.cookies.clear()  # tests choose explicitly between Bearer and cookie authentication
    return SignedInUser(
        email=email,
        password=password,
        access_token=body["access_token"],
        refresh_token=body["refresh_token"],
        session_id=body["session_id"],
        user_id=body["user"]["id"],
    )


@pytest.fixture
async def user(client: httpx.AsyncClient) -> SignedInUser:
    return await register(client)


@pytest.fixture
async def other_user(client: httpx.AsyncClient) -> SignedInUser:
    return await register(client, display_name="Grace Hopper")


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The one error shape: {"error": {"code", "message", "request_id", ...}}."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert isinstance(error["message"], str) and error["message"]
    assert error["request_id"] == response.headers["x-request-id"]
    if code is not None:
        assert error["code"] == code, error
    return dict(error)


async def login(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD, **headers: str
) -> httpx.Response:
    return await client.post(
        "/api/auth/login", json={"email": email, "password": password}, headers=headers or None
    )


def bearer(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"}
