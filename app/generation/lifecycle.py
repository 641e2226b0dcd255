"""Start-up and shutdown of the generation machinery, run from the app's lifespan."""

import asyncio
import logging
import signal
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

from app.core.config import Settings
from app.core.db import Database, utcnow
from app.core.metrics import Metrics
from app.generation.client import EchoProvider, OpenAIProvider, build_http_client
from app.generation.probe import UpstreamProbe
from app.generation.registry import ModelRegistry, Providers
from app.generation.repository import mark_stale_streams_interrupted
from app.generation.runs import SHUTDOWN, RunRegistry
from app.generation.service import GenerationRuntime
from app.generation.signals import LocalStopBus, RedisStopBus, StopBus
from app.generation.staleness import stale_after

logger = logging.getLogger("parley.generation")


async def sweep_interrupted(db: Database, settings: Settings) -> int:
    """Marks replies left `streaming` by a crashed process as `interrupted`."""
    async with db.transaction() as session:
        count = await mark_stale_streams_interrupted(
            session, older_than=utcnow() - stale_after(settings)
        )
    if count:
        logger.warning("marked interrupted replies", extra={"count": count})
    return count


async def _sweep_forever(db: Database, settings: Settings) -> None:
    while True:
        await asyncio.sleep(stale_after(settings).total_seconds())
        try:
            await sweep_interrupted(db, settings)
        except Exception:
            logger.warning("stale reply sweep failed", exc_info=True)


def _stop_runs_on_exit_signals(runs: RunRegistry) -> Callable[[], None]:
    """On SIGTERM/SIGINT, end running replies at once (each client gets an `error` event with
    `server_shutdown` and its partial reply is saved), then let the server's own handler run.

    Without this, uvicorn would wait for every open stream to finish before shutting down.
    Returns a function that puts the previous handlers back.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None  # signals only reach the main thread (tests run servers in threads)
    loop = asyncio.get_running_loop()
    previous: dict[int, Any] = {}

    def on_exit_signal(signum: int, frame: Any) -> None:
        with suppress(RuntimeError):  # the loop may already be closed
            loop.call_soon_threadsafe(runs.stop_all, SHUTDOWN)
        handler = previous.get(signum)
        if callable(handler):
            handler(signum, frame)

    for signum in (signal.SIGTERM, signal.SIGINT):
        previous[signum] = signal.getsignal(signum)
        signal.signal(signum, on_exit_signal)

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    return restore


@asynccontextmanager
async def generation_runtime(
    settings: Settings, db: Database, metrics: Metrics
) -> AsyncIterator[GenerationRuntime]:
    registry = ModelRegistry.from_settings(settings)
    if registry.upstream_configured:
        logger.info(
            "models configured",
            extra={"models": [m.name for m in registry.all()], "default": registry.default},
        )
    else:
        logger.warning(
            "no LLM upstream configured (LLM_BASE_URL): replies come from the built-in echo "
            "model, which repeats the prompt"
        )
    async with build_http_client(
        max_connections=settings.llm_max_connections,
        connect_timeout=settings.llm_connect_timeout,
        keepalive_expiry=settings.llm_keepalive_seconds,
        transport=settings.upstream_transport,
    ) as http:
        providers = Providers(
            openai=OpenAIProvider(
                http,
                first_token_timeout=settings.llm_first_token_timeout,
                idle_timeout=settings.llm_idle_timeout,
            ),
            echo=EchoProvider(delay=settings.echo_token_delay),
        )
        runs = RunRegistry()
        stops: StopBus
        if settings.redis_url:
            stops = RedisStopBus(runs, settings.redis_url)
            await stops.start()
        else:
            stops = LocalStopBus(runs)
        runtime = GenerationRuntime(
            registry=registry,
            providers=providers,
            runs=runs,
            metrics=metrics,
            probe=UpstreamProbe(registry, providers),
            stops=stops,
            stops_shared=bool(settings.redis_url),
            http=http,
            background=set(),
        )
        try:
            await sweep_interrupted(db, settings)
        except Exception:
            logger.warning("start-up sweep of interrupted replies failed", exc_info=True)
        sweeper = asyncio.create_task(_sweep_forever(db, settings))
        restore_signals = _stop_runs_on_exit_signals(runs)
        try:
            yield runtime
        finally:
            restore_signals()
            sweeper.cancel()
            await runtime.runs.shutdown()
            await stops.close()
            for task in list(runtime.background):
                task.cancel()
            with suppress(Exception):
                await asyncio.gather(sweeper, *runtime.background, return_exceptions=True)
