"""Operators' view of the upstreams (each model's deployments as the router sees them), and
which models are restricted to groups."""

from typing import Annotated

from fastapi import APIRouter, Path

from app.auth.dependencies import CurrentAdmin
from app.auth.errors import CsrfFailed
from app.core.errors import Forbidden, Unauthorized, error_responses
from app.core.text import NoNul
from app.generation.dependencies import GenerationPartsDep
from app.generation.errors import UnknownModel
from app.generation.schemas import UpstreamModelRead
from app.groups.dependencies import GroupServiceDep
from app.groups.schemas import ModelAccessRead, ModelAccessUpdate

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


@router.get(
    "/models",
    summary="Which models are restricted to groups",
    responses=error_responses(Unauthorized, Forbidden),
)
async def list_model_access(
    _admin: CurrentAdmin, parts: GenerationPartsDep, groups: GroupServiceDep
) -> list[ModelAccessRead]:
    """Every configured model (the embedding model included) by name: whether it is restricted,
    and the groups whose `models` list it. Administrators only."""
    return await groups.model_access(sorted(parts.model_names()))


@router.patch(
    "/models/{model_name}",
    summary="Restrict a model to groups, or open it to everyone",
    responses=error_responses(Unauthorized, Forbidden, CsrfFailed, UnknownModel),
)
async def update_model_access(
    model_name: Annotated[str, Path(max_length=100), NoNul],
    body: ModelAccessUpdate,
    _admin: CurrentAdmin,
    parts: GenerationPartsDep,
    groups: GroupServiceDep,
) -> ModelAccessRead:
    """`{"restricted": true}`: only members of the groups whose `models` list it (and
    administrators) may use the model; for everyone else it is not in GET /api/models or
    /v1/models, and naming it answers 404 `unknown_model`, as for a model that does not exist.
    Stored in the database; the model's other settings stay in configuration. Administrators
    only."""
    if model_name not in parts.model_names():
        raise UnknownModel(f"Unknown model {model_name!r}. GET /api/models lists them.")
    return await groups.set_restricted(model_name, restricted=body.restricted)
