"""The application factory: settings, middleware, routers, error handlers and lifespan."""

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from app.accounts.admin_router import router as admin_router
from app.accounts.router import router as users_router
from app.audit.router import router as audit_router
from app.auth.dependencies import get_current_admin
from app.auth.oidc_router import router as sso_router
from app.auth.router import mfa_router
from app.auth.router import router as auth_router
from app.chats.projects_router import router as projects_router
from app.chats.router import modes_router, tags_router
from app.chats.router import router as chats_router
from app.chats.transfer.router import router as chat_transfer_router
from app.core.apidocs import install_api_docs
from app.core.config import Settings, get_settings
from app.core.errors import install_error_handlers
from app.core.logging import configure_logging
from app.core.middleware import (
    BodySizeLimitMiddleware,
    RequestContextMiddleware,
    SecurityHeadersMiddleware,
)
from app.core.openapi import install_openapi
from app.files.router import router as files_router
from app.generation.admin_router import router as upstreams_admin_router
from app.generation.router import router as generation_router
from app.generation.websocket import router as ws_router
from app.groups.router import admin_router as groups_admin_router
from app.groups.router import router as groups_router
from app.guardrails.router import router as moderation_router
from app.health.router import router as health_router
from app.keys.dependencies import ANY_KEY, keys_allowed
from app.keys.router import router as keys_router
from app.knowledge.router import router as knowledge_router
from app.openai_api.router import router as openai_router
from app.prompts.router import router as prompts_router
from app.runtime import Runtime
from app.sharing.router import public_router as shared_router
from app.sharing.router import router as sharing_router
from app.tools.router import router as tools_router
from app.usage.router import router as usage_router
from app.web.router import install_web_client

logger = logging.getLogger("parley")

API_DESCRIPTION = """
Parley signs users up and in, keeps their chats, and streams replies token by token from any
vLLM or OpenAI-compatible server over Server-Sent Events.

Authorize with the button above (email as username), or send `Authorization: Bearer <token>`.
Every error has the same body: `{"error": {"code", "message", "request_id", "details"?}}`.

Accounts that sign in through single sign-on (OpenID Connect: `GET /api/auth/oidc/login`, in a
browser) have no password, so the Authorize button cannot sign them in. To get a token for one:
sign in through SSO in the browser (this page then works with its cookies), and either call
`POST /api/auth/refresh` from it and use the `access_token` it returns (15 minutes), or create an
API key (`POST /api/keys`, or the web client's account page) and send `Authorization: Bearer
pk-...` on the routes open to keys.

Requests authenticated by the session cookie that change state (POST, PUT, PATCH, DELETE) must
send the `csrf_token` of the token response (also in the `parley_csrf` cookie) in the
`X-CSRF-Token` header. Bearer requests need no CSRF token.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(level=settings.log_level, json_lines=settings.log_json)
    runtime = Runtime.build(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        logger.info(
            "starting",
            extra={
                "environment": settings.environment,
                "rate_limit_storage": "redis" if settings.redis_url else "memory",
                "mail": "smtp" if settings.smtp_host else "log",
                "api_docs": settings.api_docs_served,
                "metrics": (
                    "off"
                    if not settings.metrics_served
                    else ("token" if settings.metrics_token is not None else "open")
                ),
            },
        )
        if settings.metrics_enabled and not settings.metrics_served:
            logger.warning(
                "/metrics answers 404: production without METRICS_TOKEN (set one for scrapers)"
            )
        async with runtime.running():
            # The domains' dependencies reach their parts here (they cannot import the runtime).
            app.state.generation = runtime.generation
            app.state.knowledge = runtime.knowledge
            app.state.tools = runtime.generation.tools if runtime.generation else None
            _tune_garbage_collector()
            yield

    app = FastAPI(
        title="Parley",
        version="0.1.0",
        description=API_DESCRIPTION,
        lifespan=lifespan,
        swagger_ui_parameters={"persistAuthorization": True},
        # Served by install_api_docs from Parley's own files: FastAPI's pages load from a CDN.
        docs_url=None,
        redoc_url=None,
        # DOCS_ENABLED (off in production unless set): no schema, no docs pages.
        openapi_url="/openapi.json" if settings.api_docs_served else None,
    )
    app.state.runtime = runtime
    app.state.files = runtime.files
    install_error_handlers(app)
    install_openapi(app)
    if settings.api_docs_served:
        install_api_docs(app)
    # Innermost, so that its 413 still gets CORS headers and the request id.
    # Uploads stream to storage and refuse FILE_MAX_BYTES themselves (413 file_too_large), and
    # imports IMPORT_MAX_BYTES (413 import_too_large).
    own_limits: dict[str, int | None] = {"/api/files": None, "/api/chats/import": None}
    app.add_middleware(BodySizeLimitMiddleware, limit=settings.max_request_bytes, limits=own_limits)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_methods=["*"],
            allow_headers=["*"],
            # What a frontend on another origin may read: the quota headers of generation
            # answers (app/usage/service.py) besides the request id and Retry-After.
            expose_headers=["X-Request-ID", "Retry-After", "X-Quota-Limit", "X-Quota-Remaining"],
        )
    app.add_middleware(
        RequestContextMiddleware, metrics=runtime.metrics if settings.metrics_served else None
    )
    # Outermost, so that even the last-resort 500 carries the headers.
    app.add_middleware(
        SecurityHeadersMiddleware,
        hsts_seconds=settings.hsts_seconds if settings.environment == "production" else None,
    )
    app.include_router(health_router)
    app.include_router(auth_router)
    app.include_router(mfa_router)
    app.include_router(sso_router)
    app.include_router(users_router)
    app.include_router(admin_router)
    app.include_router(upstreams_admin_router)
    app.include_router(groups_admin_router)
    app.include_router(groups_router)
    # The audit package sits below auth: its router gets the administrators-only check here.
    app.include_router(audit_router, dependencies=[Depends(get_current_admin)])
    # API keys may call only the routes opened to their scopes (docs/api.md#api-keys).
    chats_scope = [keys_allowed("chats")]
    knowledge_scope = [keys_allowed("knowledge")]
    app.include_router(keys_router)
    # Before chats_router, whose /api/chats/{chat_id} would take "export" for an id.
    app.include_router(chat_transfer_router, dependencies=chats_scope)
    app.include_router(chats_router, dependencies=chats_scope)
    app.include_router(modes_router, dependencies=chats_scope)
    app.include_router(projects_router, dependencies=chats_scope)
    app.include_router(tags_router, dependencies=chats_scope)
    app.include_router(prompts_router, dependencies=chats_scope)
    app.include_router(sharing_router, dependencies=chats_scope)
    app.include_router(shared_router)
    app.include_router(generation_router, dependencies=chats_scope)
    app.include_router(tools_router, dependencies=chats_scope)
    app.include_router(ws_router)
    app.include_router(usage_router)
    app.include_router(files_router, dependencies=knowledge_scope)
    app.include_router(moderation_router)
    app.include_router(knowledge_router, dependencies=knowledge_scope)
    app.include_router(openai_router, dependencies=[keys_allowed(ANY_KEY)])
    # Last: the web client's pages and /static (docs/web.md).
    install_web_client(app)
    return app


_heap_frozen = False
# Middle-generation collections between two full ones (CPython's default is 10).
FULL_COLLECTION_EVERY = 100


def _tune_garbage_collector() -> None:
    """Full collections stop the event loop for as long as they take to walk every object alive,
    and every stream in flight feels that pause as a late token. Once per process:

    - everything alive after start-up (modules, routes, mappers: most of the heap) is frozen out
      of the collector's sight, so a full collection walks only what requests create (during a
      100-stream benchmark, 45 ms instead of 103 ms);
    - full collections wait for 100 middle-generation collections instead of 10: with hundreds of
      streams in flight a full one took 25-80 ms and came every few seconds; now it comes about
      ten times less often. Cycles that outlive the young generations wait longer to be freed
      (peak memory at 500 streams stayed at 180 MB); young ones are collected as often as before.
    """
    global _heap_frozen
    if not _heap_frozen:
        _heap_frozen = True
        gc.collect()
        gc.freeze()
        young, middle, _full = gc.get_threshold()
        gc.set_threshold(young, middle, FULL_COLLECTION_EVERY)
