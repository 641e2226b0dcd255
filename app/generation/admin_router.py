"""Operators' view of the upstreams: each model's deployments as the router sees them."""

from fastapi import APIRouter

from app.auth.dependencies import CurrentAdmin
from app.core.errors import Forbidden, Unauthorized, error_responses
from app.generation.dependencies import GenerationPartsDep
from app.generation.schemas import UpstreamModelRead

router = APIRouter(prefix="/api/admin", tags=["admin"])


@router.get(
    "/upstreams",
    summary="Upstream deployments and their health",
    responses=error_responses(Unauthorized, Forbidden),
)
async def list_upstreams(
    _admin: CurrentAdmin, parts: GenerationPartsDep
) -> list[UpstreamModelRead]:
    """Each model's deployments: state (healthy, cooldown until, half-open), requests in flight,
    the EWMA time to first token, the error rate over LLM_FAIL_WINDOW_SECONDS and the last error
    with its time. API keys are never shown. Administrators only (API keys get 403)."""
    return [UpstreamModelRead.model_validate(model) for model in parts.router.view()]
