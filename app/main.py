"""The application factory: settings, middleware, routers, error handlers and lifespan."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from app.auth.router import router as auth_router
from app.chats.router import modes_router
from app.chats.router import router as chats_router
from app.core.config import Settings, get_settings
from app.core.db import Database
from app.core.deps import Runtime
from app.core.errors import install_error_handlers
from app.core.logging import configure_logging
from app.core.metrics import Metrics
from app.core.middleware import RequestContextMiddleware
from app.core.security import JWTCodec, PasswordHasher
from app.generation.lifecycle import generation_runtime
from app.generation.router import router as generation_router
from app.generation.ws import router as ws_router
from app.health.router import router as health_router
from app.usage.router import router as usage_router

logger = logging.getLogger("parley")

API_DESCRIPTION = """
Parley signs users up and in, keeps their chats, and streams replies token by token from any
vLLM or OpenAI-compatible server over Server-Sent Events.

Authorize with the button above (email as username), or send `Authorization: Bearer <token>`.
Every error has the same body: `{"error": {"code", "message", "request_id", "details"?}}`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(level=settings.log_level, json_lines=settings.log_json)
    runtime = Runtime(
        settings=settings,
        db=Database(settings),
        hasher=PasswordHasher(settings.bcrypt_rounds),
        jwt=JWTCodec(
            settings.secret_key, access_ttl=timedelta(minutes=settings.access_token_minutes)
        ),
        metrics=Metrics(),
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        logger.info("starting", extra={"environment": settings.environment})
        try:
            async with generation_runtime(settings, runtime.db, runtime.metrics) as generation:
                app.state.generation = generation
                yield
        finally:
            await runtime.db.dispose()

    app = FastAPI(
        title="Parley",
        version="0.1.0",
        description=API_DESCRIPTION,
        lifespan=lifespan,
        swagger_ui_parameters={"persistAuthorization": True},
    )
    app.state.runtime = runtime
    install_error_handlers(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    app.add_middleware(
        RequestContextMiddleware, metrics=runtime.metrics if settings.metrics_enabled else None
    )
    app.include_router(health_router)
    app.include_router(auth_router)
    app.include_router(chats_router)
    app.include_router(modes_router)
    app.include_router(generation_router)
    app.include_router(ws_router)
    app.include_router(usage_router)
    return app
