import hmac
from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse, Response

from app.core.deps import RuntimeDep
from app.core.errors import NotFound, Unauthorized, error_responses
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
    """Checks the database (and, when configured, the upstreams); 503 when one is down.
    `degraded` (200): a model has no healthy deployment (docs/upstreams.md#routing)."""
    body = await service.readiness()
    # Degraded is still ready: every worker shares the upstreams, so taking this one out of a
    # load balancer would not help.
    status = 503 if body.status == "not_ready" else 200
    return JSONResponse(body.model_dump(), status_code=status)


class MetricsOff(NotFound):
    code = "metrics_off"
    message = "Metrics are turned off (METRICS_ENABLED=false, or production without METRICS_TOKEN)."


class MetricsTokenRequired(Unauthorized):
    code = "metrics_token_required"
    message = "Metrics need `Authorization: Bearer <METRICS_TOKEN>`."


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}},
        **error_responses(MetricsOff, MetricsTokenRequired),
    },
)
async def metrics(
    runtime: RuntimeDep,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    """Requests, latency, active streams, time to first token, tokens, upstream errors. With
    METRICS_TOKEN set, only for `Authorization: Bearer <METRICS_TOKEN>`."""
    settings = runtime.settings
    if not settings.metrics_served:
        raise MetricsOff()
    if settings.metrics_token is not None:
        expected = f"Bearer {settings.metrics_token.get_secret_value()}".encode()
        given = (authorization or "").encode()
        if not hmac.compare_digest(given, expected):
            raise MetricsTokenRequired(headers={"WWW-Authenticate": "Bearer"})
    return Response(runtime.metrics.render(), media_type=runtime.metrics.content_type)
