import re
import uuid
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BeforeValidator

from app.auth.dependencies import CurrentAdmin, CurrentUser
from app.core.errors import Forbidden, Unauthorized, error_responses
from app.usage.dependencies import UsageServiceDep
from app.usage.schemas import AdminGroupBy, GroupBy, MyUsage, UsageReport
from app.usage.service import InvalidRange

router = APIRouter(tags=["usage"])


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_date_only(value: Any) -> Any:
    """pydantic would also read a number as a Unix time (`to=1.5e-07` as 1970-01-01): the
    schema says YYYY-MM-DD, so only that is a date."""
    if isinstance(value, str) and not _ISO_DATE.fullmatch(value):
        raise ValueError("must be a date as YYYY-MM-DD")
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_date_only)]
FromDate = Annotated[IsoDate | None, Query(alias="from", description="First day (UTC), inclusive.")]
ToDate = Annotated[IsoDate | None, Query(alias="to", description="Last day (UTC), inclusive.")]


@router.get(
    "/api/usage",
    summary="My token usage and quota",
    response_model_by_alias=True,
    responses=error_responses(Unauthorized, InvalidRange),
)
async def read_my_usage(
    user: CurrentUser,
    service: UsageServiceDep,
    start: FromDate = None,
    end: ToDate = None,
    group_by: GroupBy = "day",
) -> MyUsage:
    """Prompt and completion tokens and requests per day, model or API key (default: the last
    30 days), split into upstream-reported and estimated, with today's remaining quota."""
    return await service.my_usage(user, start=start, end=end, group_by=group_by)


@router.get(
    "/api/admin/usage",
    summary="Usage across users",
    response_model_by_alias=True,
    responses=error_responses(Unauthorized, Forbidden, InvalidRange),
)
async def read_all_usage(
    _admin: CurrentAdmin,
    service: UsageServiceDep,
    start: FromDate = None,
    end: ToDate = None,
    group_by: AdminGroupBy = "day",
    user_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=100, description="Top users (group_by=user).")] = 20,
) -> UsageReport:
    """Usage per day, model, user (top users first) or API key, optionally for one user."""
    return await service.report(
        start=start, end=end, group_by=group_by, user_id=user_id, limit=limit
    )
