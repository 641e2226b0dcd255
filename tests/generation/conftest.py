"""Fixtures for the generation tests: a fresh fake upstream per test and a client pointed at it."""

from collections.abc import AsyncIterator

import httpx
import pytest

from app.generation.client import ModelConfig, OpenAIProvider, build_http_client
from tests.fake_upstream import FakeUpstream, run_fake_upstream


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
