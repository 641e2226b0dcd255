"""Fixtures for tests that involve the upstream: the fake model server, and Parley on a real
uvicorn pointed at it. Registered for the whole suite by tests/conftest.py (pytest_plugins)."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.core.config import Settings
from app.generation.reply_stream import ActiveReplies
from app.generation.upstream.openai import OpenAIProvider
from app.generation.upstream.transport import build_http_client
from app.generation.upstream.types import ModelConfig
from app.main import create_app
from tests.support.api import SignedInUser, register
from tests.support.database import TestDatabase
from tests.support.fake_upstream import FakeUpstream, run_fake_upstream
from tests.support.live import live_server
from tests.support.settings import make_settings


@pytest.fixture
async def fake_upstream() -> AsyncIterator[FakeUpstream]:
    """A new server, so every test starts with default knobs and empty observations."""
    async with run_fake_upstream() as fake:
        yield fake


@pytest.fixture
async def http_client() -> AsyncIterator[httpx.AsyncClient]:
    async with build_http_client(max_connections=1000, connect_timeout=2.0) as client:
        yield client


@pytest.fixture
def provider(http_client: httpx.AsyncClient) -> OpenAIProvider:
    return OpenAIProvider(
        http_client, first_token_timeout=2.0, idle_timeout=2.0, retry_backoff=0.01
    )


@pytest.fixture
def model(fake_upstream: FakeUpstream) -> ModelConfig:
    return ModelConfig(
        name="fake",
        base_url=fake_upstream.base_url,
        api_key="sk-test",
        upstream_model="fake-model",
        context_length=4096,
        provider="openai",
    )


# --- Parley itself, pointed at the fake upstream, on a real uvicorn -------------------------


@dataclass
class Parley:
    base_url: str
    app: FastAPI
    http: httpx.AsyncClient

    @property
    def runs(self) -> ActiveReplies:
        replies: ActiveReplies = self.app.state.generation.replies
        return replies


def parley_settings(database: TestDatabase, fake: FakeUpstream, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "llm_base_url": fake.base_url,
        "llm_model": "fake-model",
        "llm_first_token_timeout": 2.0,
        "llm_idle_timeout": 2.0,
        "stream_checkpoint_seconds": 0.2,
        "echo_token_delay": 0.0,
    }
    values.update(overrides)
    return make_settings(database, **values)


@asynccontextmanager
async def running_parley(settings: Settings) -> AsyncIterator[Parley]:
    app = create_app(settings)
    with live_server(app) as base_url:
        limits = httpx.Limits(max_connections=600, max_keepalive_connections=600)
        async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as http:
            yield Parley(base_url=base_url, app=app, http=http)


@pytest.fixture
def parley_overrides() -> dict[str, Any]:
    """Settings of the `parley` fixture beyond the defaults; a test changes them with
    `@pytest.mark.parametrize("parley_overrides", [{...}])`."""
    return {}


@pytest.fixture
async def parley(
    database: TestDatabase,
    clean_db: Any,
    fake_upstream: FakeUpstream,
    parley_overrides: dict[str, Any],
) -> AsyncIterator[Parley]:
    settings = parley_settings(database, fake_upstream, **parley_overrides)
    async with running_parley(settings) as running:
        yield running


@pytest.fixture
async def author(parley: Parley) -> SignedInUser:
    return await register(parley.http)


async def new_chat(http: httpx.AsyncClient, user: SignedInUser, **fields: Any) -> dict[str, Any]:
    response = await http.post("/api/chats", json=fields, headers=user.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


@pytest.fixture
async def chat(parley: Parley, author: SignedInUser) -> dict[str, Any]:
    return await new_chat(parley.http, author)
