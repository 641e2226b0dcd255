import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from app import audit
from app.audit import actions
from app.auth.dependencies import CurrentAdmin
from app.core.db import INT32_MAX
from app.core.deps import UnitOfWorkDep
from app.core.errors import Forbidden, Unauthorized, error_responses
from app.guardrails.dependencies import ModerationRepositoryDep
from app.guardrails.schemas import (
    GuardrailAction,
    GuardrailPoint,
    ModerationEventRead,
    ModerationPage,
)

router = APIRouter(prefix="/api/admin", tags=["admin"])


@router.get(
    "/moderation",
    summary="List moderation events",
    responses=error_responses(Unauthorized, Forbidden),
)
async def list_moderation_events(
    admin: CurrentAdmin,
    moderation: ModerationRepositoryDep,
    uow: UnitOfWorkDep,
    user_id: uuid.UUID | None = None,
    chat_id: uuid.UUID | None = None,
    point: GuardrailPoint | None = None,
    check: Annotated[str | None, Query(max_length=32, pattern=r"^[a-z_]+$")] = None,
    action: GuardrailAction | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=INT32_MAX)] = 0,
) -> ModerationPage:
    """What the guardrails refused, redacted, flagged or let through, newest first: when, whose,
    which chat, at which point, by which check, the category and the action."""
    events, total = await moderation.page(
        limit=limit,
        offset=offset,
        user_id=user_id,
        chat_id=chat_id,
        point=point,
        check=check,
        action=action,
    )
    filters = {"user_id": user_id, "chat_id": chat_id, "point": point, "check": check}
    await audit.record(
        uow,
        actions.MODERATION_READ,
        actor=admin.id,
        target=audit.Target("moderation_log"),
        details={
            **{name: str(value) for name, value in filters.items() if value is not None},
            **({"action": str(action)} if action is not None else {}),
            "offset": offset,
            "returned": len(events),
        },
    )
    return ModerationPage(
        items=[ModerationEventRead.model_validate(e) for e in events],
        total=total,
        limit=limit,
        offset=offset,
    )
