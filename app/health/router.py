from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from sqlalchemy import text

from app.core.deps import RuntimeDep
from app.core.errors import NotFound, error_responses

router = APIRouter(tags=["ops"])


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class DependencyState(BaseModel):
    status: Literal["ok", "error"]
    detail: str | None = None


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    checks: dict[str, DependencyState]


@router.get("/health", summary="Liveness")
async def health() -> Health:
    """The process is up and serving requests."""
    return Health()


@router.get(
    "/health/ready",
    summary="Readiness",
    responses={503: {"model": Readiness, "description": "A dependency is down."}},
)
async def readiness(request: Request, runtime: RuntimeDep) -> JSONResponse:
    """Checks the database (and, when configured, the upstreams); 503 when one is down."""
    checks: dict[str, DependencyState] = {}
    try:
        async with runtime.db.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        checks["database"] = DependencyState(status="ok")
    except Exception as exc:
        checks["database"] = DependencyState(status="error", detail=type(exc).__name__)
    generation = getattr(request.app.state, "generation", None)
    if generation is not None:
        for name, state in (await generation.probe.check()).items():
            checks[name] = DependencyState(
                status="ok" if state.ok else "error", detail=state.detail
            )
    ready = all(check.status == "ok" for check in checks.values())
    body = Readiness(status="ready" if ready else "not_ready", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


class MetricsOff(NotFound):
    code = "metrics_off"
    message = "Metrics are turned off (METRICS_ENABLED=false)."


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}, **error_responses(MetricsOff)},
)
async def metrics(runtime: RuntimeDep) -> Response:
    """Requests, latency, active streams, time to first token, tokens, upstream errors."""
    if not runtime.settings.metrics_enabled:
        raise MetricsOff()
    return Response(runtime.metrics.render(), media_type=runtime.metrics.content_type)
