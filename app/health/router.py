from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from app.core.deps import RuntimeDep
from app.core.errors import NotFound, error_responses
from app.health.dependencies import HealthServiceDep
from app.health.schemas import Health, Readiness

router = APIRouter(tags=["ops"])


@router.get("/health", summary="Liveness")
async def health() -> Health:
    """The process is up and serving requests."""
    return Health()


@router.get(
    "/health/ready",
    summary="Readiness",
    responses={503: {"model": Readiness, "description": "A dependency is down."}},
)
async def readiness(service: HealthServiceDep) -> JSONResponse:
    """Checks the database (and, when configured, the upstreams); 503 when one is down."""
    body = await service.readiness()
    return JSONResponse(body.model_dump(), status_code=200 if body.status == "ready" else 503)


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
