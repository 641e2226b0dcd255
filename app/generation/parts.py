"""The generation package's long-lived parts (models, providers, the replies streaming, stop
signals, the reply fan-out, the composer), started and stopped by the app's runtime
(app/runtime.py)."""

import asyncio
import logging
import signal
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import httpx
import redis.asyncio as redis

from app.auth.live_sessions import LiveSessions
from app.core.background import BackgroundJobs, Supervisor
from app.core.config import Settings
from app.core.db import Database
from app.core.invalidation import Invalidations
from app.core.metrics import Metrics
from app.generation.pipeline.composer import ReplyComposer, default_stages
from app.generation.pipeline.stages.tools import Tools, UsageStepQuota
from app.generation.reply_buffer import RedisReplyBuffer
from app.generation.reply_stream import SHUTDOWN, ActiveReplies, DisconnectPolicy
from app.generation.stale_replies import stale_after, sweep_interrupted
from app.generation.stop_signals import LocalStopBus, RedisStopBus, StopBus
from app.generation.tool_approvals import PendingApprovals
from app.generation.upstream.echo import EchoProvider
from app.generation.upstream.openai import OpenAIProvider
from app.generation.upstream.probe import UpstreamProbe
from app.generation.upstream.registry import ModelRegistry, Providers
from app.generation.upstream.routed import RoutedProvider
from app.generation.upstream.routing import Router
from app.generation.upstream.routing_shared import SharedRouting
from app.generation.upstream.types import ChatMessage, ModelConfig
from app.groups.access import GroupCache
from app.guardrails.guard_model import GuardModel
from app.guardrails.pipeline import GuardrailPipeline
from app.guardrails.recorder import ModerationRecorder
from app.knowledge.embeddings import EmbeddingClient
from app.knowledge.parts import KnowledgeParts
from app.tools.catalog import ToolCatalog
from app.tools.runner import ToolRunner

logger = logging.getLogger("parley.generation")


@dataclass
class GenerationParts:
    """Models, providers on the runtime's HTTP client, the replies streaming, and stop signals
    (runtime.generation, also app.state.generation for the package's dependencies)."""

    registry: ModelRegistry
    providers: Providers
    # Chooses each attempt's deployment and keeps their health (upstream/routing.py).
    router: Router
    # The embedding endpoint(s), shared with knowledge (None: EMBEDDING_BASE_URL unset).
    embeddings: EmbeddingClient | None
    replies: ActiveReplies
    metrics: Metrics
    probe: UpstreamProbe
    stops: StopBus
    stops_shared: bool
    http: httpx.AsyncClient
    # Work a reply schedules and does not wait for (titles, freeing idempotency keys).
    jobs: BackgroundJobs
    guardrails: GuardrailPipeline
    # The sessions of this worker's open WebSockets, watched for revocation and expiry.
    sessions: LiveSessions
    # Replies' events in Redis for clients rejoining on another worker; None without REDIS_URL.
    buffer: RedisReplyBuffer | None = None
    # Retrieval for chats that name collections; set by the app's lifespan (app/main.py).
    knowledge: "KnowledgeParts | None" = None
    # Restricted models and users' groups (app/groups/access.py): the runtime's one cache.
    groups: GroupCache = field(default_factory=lambda: GroupCache(Invalidations(None)))
    # The tools chats may offer the model (app/tools), and the calls waiting for approval.
    tools: ToolCatalog = field(init=False)
    approvals: PendingApprovals = field(init=False)
    # The stages every reply is composed of (pipeline/composer.py).
    composer: ReplyComposer = field(init=False)

    def model_names(self) -> frozenset[str]:
        """Every model a request may name: the chat models and the embedding model (/v1)."""
        names = self.registry.names()
        if self.embeddings is not None:
            names |= {self.embeddings.model}
        return names


@dataclass
class GuardUpstreamClient:
    """The guard model as the guardrails reach it: through the upstream provider and its one
    shared HTTP client (app/guardrails/guard_model.py, GuardUpstream)."""

    provider: RoutedProvider
    model: ModelConfig

    async def complete(
        self, messages: list[ChatMessage], *, max_tokens: int, extra: dict[str, Any]
    ) -> str:
        return await self.provider.complete(
            self.model, messages, max_tokens=max_tokens, extra=extra
        )

    async def moderate(self, text: str) -> dict[str, Any]:
        answer: dict[str, Any] = await self.provider.moderate(self.model, text)
        return answer


def build_guardrails(
    settings: Settings,
    db: Database,
    metrics: Metrics,
    registry: ModelRegistry,
    provider: RoutedProvider,
) -> GuardrailPipeline:
    guard: GuardModel | None = None
    if settings.guard_model:
        model = registry.internal_model(settings.guard_model)
        if model is None:
            raise ValueError(
                f"GUARD_MODEL {settings.guard_model!r} is not a configured model (LLM_MODEL or "
                "a key of LLM_MODELS)"
            )
        if model.provider != "openai":
            raise ValueError(f"GUARD_MODEL {settings.guard_model!r} is not served by an upstream")
        guard = GuardModel(
            GuardUpstreamClient(provider, model),
            format=settings.guard_format,
            timeout=settings.guard_timeout,
        )
        logger.info(
            "guard model configured",
            extra={"guard_model": model.name, "format": settings.guard_format},
        )
    return GuardrailPipeline(settings, ModerationRecorder(db, metrics), guard)


def _stop_replies_on_exit_signals(replies: ActiveReplies) -> Callable[[], None]:
    """On SIGTERM/SIGINT, end streaming replies at once (each client gets an `error` event with
    `server_shutdown` and what came is saved), then let the server's own handler run.

    Without this, uvicorn would wait for every open stream to finish before shutting down.
    Returns a function that puts the previous handlers back.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None  # signals only reach the main thread (tests run servers in threads)
    loop = asyncio.get_running_loop()
    previous: dict[int, Any] = {}

    def on_exit_signal(signum: int, frame: Any) -> None:
        with suppress(RuntimeError):  # the loop may already be closed
            loop.call_soon_threadsafe(replies.stop_all, SHUTDOWN)
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


# Seconds shutdown gives the package's jobs (titles) before cancelling them.
JOBS_GRACE_SECONDS = 1.0


@asynccontextmanager
async def running_generation(
    settings: Settings,
    db: Database,
    metrics: Metrics,
    supervisor: Supervisor,
    http: httpx.AsyncClient,
    shared: redis.Redis | None,
    embeddings: EmbeddingClient | None = None,
    *,
    groups: GroupCache | None = None,
    invalidations: Invalidations | None = None,
) -> AsyncIterator[GenerationParts]:
    """Builds the parts on the runtime's HTTP client and (with REDIS_URL) its Redis client,
    starts their loops under the supervisor, and on the way out ends the replies streaming
    (saving what came) before stopping the loops."""
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
    models = registry.all(internal=True)
    router = Router(
        models,
        strategy=settings.llm_routing,
        fallbacks=settings.llm_fallbacks,
        allowed_fails=settings.llm_allowed_fails,
        fail_window=settings.llm_fail_window_seconds,
        cooldown=settings.llm_cooldown_seconds,
        max_attempts=settings.llm_max_attempts,
        metrics=metrics,
    )
    openai = RoutedProvider(
        OpenAIProvider(
            http,
            first_token_timeout=settings.llm_first_token_timeout,
            idle_timeout=settings.llm_idle_timeout,
            attempts=1,  # the router tries again, on another deployment when there is one
        ),
        router,
        {model.name: model for model in models},
        first_token_timeout=settings.llm_first_token_timeout,
    )
    providers = Providers(openai=openai, echo=EchoProvider(delay=settings.echo_token_delay))
    shared_routing = SharedRouting(shared, router) if shared is not None else None
    buffer = (
        RedisReplyBuffer(
            shared,
            keep_seconds=settings.reply_buffer_seconds,
            max_entries=settings.reply_buffer_max_entries,
        )
        if shared is not None
        else None
    )
    replies = ActiveReplies(
        on_disconnect=DisconnectPolicy(
            settings.reply_on_disconnect, settings.reply_resume_grace_seconds
        ),
        publisher=buffer,
        keep_seconds=settings.reply_buffer_seconds,
    )
    stops: StopBus = RedisStopBus(replies, shared) if shared is not None else LocalStopBus(replies)
    parts = GenerationParts(
        registry=registry,
        providers=providers,
        router=router,
        embeddings=embeddings,
        replies=replies,
        metrics=metrics,
        probe=UpstreamProbe(registry, providers),
        stops=stops,
        stops_shared=shared is not None,
        http=http,
        jobs=BackgroundJobs(),
        guardrails=build_guardrails(settings, db, metrics, registry, openai),
        sessions=LiveSessions(db),
        buffer=buffer,
        groups=groups if groups is not None else GroupCache(Invalidations(None)),
    )
    invalidations = invalidations or Invalidations(None)
    parts.tools = ToolCatalog(settings, db, invalidations, knowledge_search=True)
    parts.approvals = PendingApprovals(invalidations)
    parts.composer = ReplyComposer(
        default_stages(
            settings=settings,
            db=db,
            guardrails=parts.guardrails,
            knowledge=lambda: parts.knowledge,
            tools=Tools(
                catalog=parts.tools,
                runner=ToolRunner(parts.tools, settings, lambda: parts.knowledge),
                approvals=parts.approvals,
                settings=settings,
                guardrails=parts.guardrails,
                quota=UsageStepQuota(db, settings, parts.groups),
            ),
        ),
        max_image_side=settings.vision_max_side,
    )
    loops: list[str] = []
    # Tool discovery at start (a server that is down is reported, never fatal), then again
    # every MCP_REFRESH_SECONDS.
    await parts.tools.refresh()
    if settings.mcp_servers:
        supervisor.every(TOOL_DISCOVERY_LOOP, settings.mcp_refresh_seconds, parts.tools.refresh)
        loops.append(TOOL_DISCOVERY_LOOP)
    if shared_routing is not None:
        supervisor.start(ROUTING_SYNC_LOOP, shared_routing.sync_forever)
        loops.append(ROUTING_SYNC_LOOP)
    if buffer is not None:
        supervisor.start(REPLY_BUFFER_LOOP, buffer.flush_forever)
        loops.append(REPLY_BUFFER_LOOP)
    if isinstance(stops, RedisStopBus):
        supervisor.start(STOP_BUS_LOOP, stops.listen)
        loops.append(STOP_BUS_LOOP)
        with suppress(TimeoutError):
            async with asyncio.timeout(5):
                await stops.subscribed()
    try:
        await sweep_interrupted(db, settings)
    except Exception:
        logger.warning("start-up sweep of interrupted replies failed", exc_info=True)
    supervisor.every(
        STALE_SWEEP_LOOP,
        stale_after(settings).total_seconds(),
        lambda: sweep_interrupted(db, settings),
    )
    loops.append(STALE_SWEEP_LOOP)
    restore_signals = _stop_replies_on_exit_signals(replies)
    try:
        yield parts
    finally:
        restore_signals()
        await parts.replies.shutdown()
        await parts.sessions.close()
        await supervisor.stop(*loops)
        if buffer is not None:
            await buffer.close()  # the last events of replies stopped above
        await parts.jobs.drain(timeout=JOBS_GRACE_SECONDS)
        await parts.guardrails.recorder.drain()
        await parts.tools.close()


# The package's loops under the supervisor.
REPLY_BUFFER_LOOP = "reply-buffer-flush"
STOP_BUS_LOOP = "stop-signals"
STALE_SWEEP_LOOP = "stale-reply-sweep"
ROUTING_SYNC_LOOP = "routing-sync"
TOOL_DISCOVERY_LOOP = "tool-discovery"
