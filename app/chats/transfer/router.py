"""POST /api/chats/import and GET /api/chats/export (included before the chats router, whose
/api/chats/{chat_id} would otherwise take "export" for a chat id)."""

import uuid
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from app.auth.dependencies import CurrentUser
from app.chats.transfer.errors import (
    ImportTooLarge,
    InvalidInclude,
    NoImportFile,
    UnsupportedImport,
)
from app.chats.transfer.export import BulkExport, ExportSelection
from app.chats.transfer.schemas import ImportSummary
from app.chats.transfer.service import ImportService
from app.core.deps import RuntimeDep, SettingsDep, UnitOfWorkDep
from app.core.errors import Unauthorized, error_responses
from app.core.text import NoNul
from app.files.errors import InvalidUpload, UploadIncomplete

router = APIRouter(prefix="/api/chats", tags=["chats"])

IMPORT_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}


async def get_import_service(uow: UnitOfWorkDep, settings: SettingsDep) -> ImportService:
    return ImportService(uow, max_bytes=settings.import_max_bytes)


ImportServiceDep = Annotated[ImportService, Depends(get_import_service)]


def _content_length(request: Request) -> int | None:
    value = request.headers.get("content-length", "")
    return int(value) if value.isdigit() else None


@router.post(
    "/import",
    summary="Import chats exported from ChatGPT, Claude, Open WebUI or Parley",
    openapi_extra=IMPORT_BODY,
    response_model=ImportSummary,
    responses={
        207: {"model": ImportSummary, "description": "Some conversations could not be read."},
        **error_responses(
            Unauthorized,
            InvalidUpload,
            UploadIncomplete,
            ImportTooLarge,
            NoImportFile,
            UnsupportedImport,
        ),
    },
)
async def import_chats(
    request: Request, user: CurrentUser, service: ImportServiceDep
) -> JSONResponse:
    """multipart/form-data with the export in a part named `file`: a conversations.json or the
    whole .zip (ChatGPT, Claude), an Open WebUI chat export, or Parley's JSON or zip export.
    Conversations imported before are left as they are."""
    summary = await service.import_file(
        user,
        body=request.stream(),
        content_type=request.headers.get("content-type"),
        content_length=_content_length(request),
    )
    return JSONResponse(summary.model_dump(mode="json"), status_code=207 if summary.failed else 200)


@router.get(
    "/export",
    summary="Download every chat as a zip",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "A zip with a JSON file (re-importable) and a Markdown file per chat.",
            "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
        },
        **error_responses(Unauthorized, InvalidInclude),
    },
)
async def export_chats(
    user: CurrentUser,
    runtime: RuntimeDep,
    include: Annotated[
        str | None,
        Query(
            max_length=100,
            description="Also export these, comma-separated: `archived`, `trashed`.",
        ),
    ] = None,
    project_id: Annotated[
        uuid.UUID | None, Query(description="Only the chats of this project of yours.")
    ] = None,
    tag: Annotated[
        str | None, Query(max_length=100, description="Only the chats with this tag."), NoNul
    ] = None,
) -> StreamingResponse:
    """Every chat out of the trash and not archived (more with `include`; only one project's
    or one tag's with `project_id` or `tag`), streamed."""
    selection = ExportSelection.of(user.id, include, project_id=project_id, tag=tag)
    export = BulkExport(runtime.db, selection)
    disposition = (
        f"attachment; filename=\"{export.filename}\"; filename*=UTF-8''{quote(export.filename)}"
    )
    return StreamingResponse(
        export.stream(),
        media_type="application/zip",
        headers={"Content-Disposition": disposition},
    )
