"""The upstream client's tests run over both network backends (setting UPSTREAM_TRANSPORT)."""

from collections.abc import AsyncIterator

import httpx
import pytest

from app.generation.upstream.transport import UpstreamTransportName, build_http_client


@pytest.fixture(params=["fast", "httpx"])
def upstream_transport(request: pytest.FixtureRequest) -> UpstreamTransportName:
    """`fast`: Parley's asyncio backend; `httpx`: httpx's stock transport, the fallback."""
    name: UpstreamTransportName = request.param
    return name


@pytest.fixture
async def http_client(
    upstream_transport: UpstreamTransportName,
) -> AsyncIterator[httpx.AsyncClient]:
    async with build_http_client(
        max_connections=1000, connect_timeout=2.0, transport=upstream_transport
    ) as client:
        yield client
