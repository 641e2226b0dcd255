"""Start-up and shutdown of the generation machinery, run from the app's lifespan."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import timedelta

from app.core.config import Settings
from app.core.db import Database, utcnow
from app.generation.client import EchoProvider, OpenAIProvider, build_http_client
from app.generation.registry import ModelRegistry, Providers
from app.generation.repository import mark_stale_streams_interrupted
from app.generation.runs import RunRegistry
from app.generation.service import GenerationRuntime

logger = logging.getLogger("parley.generation")

# A live reply is checkpointed every STREAM_CHECKPOINT_SECONDS; one silent for this many
# checkpoints (and at least STALE_MIN_SECONDS, so a briefly overloaded database does not look
# like a dead process) belongs to a process that died.
STALE_AFTER_CHECKPOINTS = 5
STALE_MIN_SECONDS = 30.0


def stale_after(settings: Settings) -> timedelta:
    seconds = settings.stream_checkpoint_seconds * STALE_AFTER_CHECKPOINTS
    return timedelta(seconds=max(seconds, STALE_MIN_SECONDS))


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


@asynccontextmanager
async def generation_runtime(settings: Settings, db: Database) -> AsyncIterator[GenerationRuntime]:
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
        max_connections=settings.llm_max_connections, connect_timeout=settings.llm_connect_timeout
    ) as http:
        runtime = GenerationRuntime(
            registry=registry,
            providers=Providers(
                openai=OpenAIProvider(
                    http,
                    first_token_timeout=settings.llm_first_token_timeout,
                    idle_timeout=settings.llm_idle_timeout,
                ),
                echo=EchoProvider(delay=settings.echo_token_delay),
            ),
            runs=RunRegistry(),
            http=http,
            background=set(),
        )
        try:
            await sweep_interrupted(db, settings)
        except Exception:
            logger.warning("start-up sweep of interrupted replies failed", exc_info=True)
        sweeper = asyncio.create_task(_sweep_forever(db, settings))
        try:
            yield runtime
        finally:
            sweeper.cancel()
            await runtime.runs.shutdown()
            for task in list(runtime.background):
                task.cancel()
            with suppress(Exception):
                await asyncio.gather(sweeper, *runtime.background, return_exceptions=True)
