"""GET /api/admin/audit: the audit log, read-only (there is no route that edits or deletes an
event).

The router checks no role itself: the audit package sits below auth, so create_app() includes
it with the administrators-only dependency (`dependencies=[Depends(get_current_admin)]`), and
tests/audit checks that a user gets 403.
"""

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import AwareDatetime

from app.audit.dependencies import AuditRuntimeDep, AuditServiceDep
from app.audit.repository import AuditFilter
from app.audit.schemas import AuditPage
from app.audit.service import export_lines
from app.core.cursor import CursorQuery, InvalidCursor
from app.core.errors import Forbidden, Unauthorized, error_responses
from app.core.text import NoNul

router = APIRouter(prefix="/api/admin", tags=["admin"])

JSONL_TYPES = ("application/jsonl", "application/x-ndjson", "application/x-jsonlines")
JSONL_MEDIA_TYPE = "application/x-ndjson"


def _wants_lines(request: Request, format_: str | None) -> bool:
    if format_ is not None:
        return format_ == "jsonl"
    accept = request.headers.get("accept", "")
    return any(kind in accept for kind in JSONL_TYPES)


@router.get(
    "/audit",
    summary="Read or export the audit log",
    responses={
        200: {
            "content": {JSONL_MEDIA_TYPE: {"schema": {"type": "string"}}},
            "description": "A page of events (JSON), or every matching event (JSON Lines).",
        },
        **error_responses(Unauthorized, Forbidden, InvalidCursor),
    },
    response_model=AuditPage,
)
async def read_audit_log(
    request: Request,
    service: AuditServiceDep,
    runtime: AuditRuntimeDep,
    actor: Annotated[
        str | None,
        Query(max_length=64, description="A user id, `system` or `anonymous`."),
        NoNul,
    ] = None,
    action: Annotated[
        str | None,
        Query(
            max_length=64,
            pattern=r"^[a-z_]+(\.[a-z_]+|\.\*)?$",
            description="An action (`auth.sign_in`), or every action of an area (`auth.*`).",
        ),
    ] = None,
    target_type: Annotated[
        str | None, Query(max_length=32, pattern=r"^[a-z_]+$", description="`user`, `api_key`…")
    ] = None,
    target_id: Annotated[str | None, Query(max_length=128), NoNul] = None,
    since: Annotated[AwareDatetime | None, Query(description="From this time (inclusive).")] = None,
    until: Annotated[AwareDatetime | None, Query(description="Before this time.")] = None,
    cursor: CursorQuery = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    format: Annotated[
        Literal["json", "jsonl"] | None,
        Query(
            description="`jsonl`: every matching event as JSON Lines (also `Accept: "
            "application/jsonl` or `application/x-ndjson`); the cursor and limit are ignored."
        ),
    ] = None,
) -> AuditPage | StreamingResponse:
    """Security and administrative events, newest first, filtered by actor, action, target
    and time; `next_cursor` pages on. Administrators only."""
    # This worker's queued events first, in this request's transaction, so that what it just
    # did is in the answer.
    await service.write_queued(runtime.audit_writer)
    where = AuditFilter(
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        since=since,
        until=until,
    )
    if _wants_lines(request, format):
        return StreamingResponse(
            export_lines(runtime.db, where),
            media_type=JSONL_MEDIA_TYPE,
            headers={"Content-Disposition": 'attachment; filename="audit.jsonl"'},
        )
    return await service.page(where, limit=limit, cursor=cursor)
