"""An app in the test's own event loop (lifespan run, no server): start it, reach its runtime,
wait for its background work."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI

from app.core.config import Settings
from app.main import create_app
from app.runtime import Runtime


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
