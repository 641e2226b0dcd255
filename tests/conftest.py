"""The suite's fixtures: one database per test run (and per xdist worker), built by
`alembic upgrade head`, emptied before each test; settings, an app and a client for it; users.

What the fixtures are built from lives in tests/support (the database in database.py, settings in
settings.py, the app in app.py, calling the API in api.py); test modules import it from there.
"""

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.core.config import Settings
from app.core.db import create_engine
from app.models import Base
from tests.support.api import SignedInUser, register
from tests.support.app import start_app
from tests.support.database import TestDatabase, create_database, migrate, run_in_thread
from tests.support.settings import make_settings, smtp_settings
from tests.support.smtp_server import SMTPTestServer, running_smtp_server

pytest_plugins = ["tests.support.upstream_fixtures"]


@pytest.fixture(scope="session")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestDatabase]:
    """A fresh database for this run, migrated to head, dropped at the end."""
    db, drop = create_database(tmp_path_factory.mktemp("db"))
    try:
        migrate(db.url)
        yield db
    finally:
        run_in_thread(drop)


@pytest.fixture(scope="session")
def empty_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestDatabase]:
    """A second fresh database with no tables, for migration tests."""
    db, drop = create_database(tmp_path_factory.mktemp("empty"))
    try:
        yield db
    finally:
        run_in_thread(drop)


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


@pytest.fixture
def mail_settings(
    database: TestDatabase, clean_db: AsyncEngine, smtp_server: SMTPTestServer
) -> Settings:
    """The default test settings, with mail going to the `smtp_server` fixture."""
    return make_settings(database, **smtp_settings(smtp_server))


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


@pytest.fixture
async def user(client: httpx.AsyncClient) -> SignedInUser:
    return await register(client)


@pytest.fixture
async def other_user(client: httpx.AsyncClient) -> SignedInUser:
    return await register(client, display_name="Grace Hopper")
