"""Parley with MCP servers configured: `calc` (tests/support/mcp_server.py) and, named `other`,
a second copy whose `lookup` clashes with calc's."""

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.keys.helpers import make_admin
from tests.support.api import SignedInUser, register
from tests.support.database import TestDatabase
from tests.support.fake_upstream import FakeUpstream
from tests.support.mcp_server import McpServerState, running_mcp_server
from tests.support.upstream_fixtures import Parley, parley_settings, running_parley


@pytest.fixture
def calc() -> Iterator[McpServerState]:
    with running_mcp_server("calc") as state:
        yield state


@pytest.fixture
def other() -> Iterator[McpServerState]:
    with running_mcp_server("other") as state:
        yield state


@pytest.fixture
def calc_headers(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A secret named by its environment variable, and a plain header."""
    monkeypatch.setenv("PARLEY_TEST_CALC_TOKEN", "s3cret")
    return {
        "Authorization": {"env": "PARLEY_TEST_CALC_TOKEN", "prefix": "Bearer "},
        "X-Team": "tests",
    }


@pytest.fixture
def mcp_config(
    calc: McpServerState, other: McpServerState, calc_headers: dict[str, Any]
) -> dict[str, Any]:
    return {
        "calc": {"url": calc.url, "headers": calc_headers},
        "other": {"url": other.url, "approve": ["lookup"]},
    }


@pytest.fixture
async def parley(
    database: TestDatabase,
    clean_db: Any,
    fake_upstream: FakeUpstream,
    parley_overrides: dict[str, Any],
    mcp_config: dict[str, Any],
    tmp_path: Path,
) -> AsyncIterator[Parley]:
    settings = parley_settings(
        database,
        fake_upstream,
        **{
            "mcp_servers": mcp_config,
            "auto_title": False,
            "file_storage_dir": str(tmp_path / "files"),
            **parley_overrides,
        },
    )
    async with running_parley(settings) as running:
        yield running


@pytest.fixture
async def admin(parley: Parley, clean_db: AsyncEngine) -> SignedInUser:
    user = await register(parley.http)
    await make_admin(clean_db, user)
    return user
