"""The yardstick for bench/throughput.py: the least a relay of streamed replies can do in Python.

A FastAPI app with one route that forwards a chat request to the upstream over one shared httpx
client and streams the upstream's SSE bytes back as they come: no accounts, no database, no
checks, no parsing. `PARLEY_BARE_UPSTREAM` is the upstream's base URL (…/v1).

    uvicorn --factory _bare_relay:create_app
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse


def create_app() -> FastAPI:
    upstream = os.environ["PARLEY_BARE_UPSTREAM"]
    state: dict[str, httpx.AsyncClient] = {}

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
        async with httpx.AsyncClient(base_url=upstream, limits=limits, timeout=60) as client:
            state["client"] = client
            yield

    app = FastAPI(lifespan=lifespan)

    @app.post("/relay")
    async def relay(request: Request) -> StreamingResponse:
        body: dict[str, Any] = await request.json()
        client = state["client"]
        upstream_request = client.build_request("POST", "/chat/completions", json=body)
        response = await client.send(upstream_request, stream=True)

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for chunk in response.aiter_raw():
                    yield chunk
            finally:
                await response.aclose()

        return StreamingResponse(chunks(), media_type="text/event-stream")

    return app
