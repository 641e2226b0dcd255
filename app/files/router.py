import unicodedata
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from app.auth.dependencies import CurrentUser
from app.auth.errors import CsrfFailed
from app.core.cursor import CursorQuery
from app.core.errors import Unauthorized, error_responses
from app.files.dependencies import FileServiceDep, OwnedFile
from app.files.detect import IMAGE_TYPES
from app.files.errors import (
    CorruptFile,
    DocumentTooLarge,
    EmptyFile,
    FileInUse,
    FileMissing,
    FileNameTooLong,
    FileNotFound,
    FileTooLarge,
    ImageTooLarge,
    InvalidCursor,
    InvalidFileName,
    InvalidUpload,
    StorageQuotaExceeded,
    StorageUnavailable,
    UnsupportedFileType,
    UploadIncomplete,
    UploadTimeout,
)
from app.files.models import File, FileKind
from app.files.schemas import FilePage, FileRead
from app.files.storage import BlobStream

router = APIRouter(prefix="/api/files", tags=["files"])

# Whatever a file holds (HTML, SVG, a script), a browser that opens it in Parley's origin runs
# nothing, loads nothing, and treats it as a unique origin.
CONTENT_CSP = "default-src 'none'; sandbox"
_INLINE_TYPES = frozenset(file_type.media_type for file_type in IMAGE_TYPES)
DOWNLOAD_TYPE = "application/octet-stream"

UPLOAD_BODY: dict[str, Any] = {
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

Limit = Annotated[int, Query(ge=1, le=100, description="Page size.")]


def _content_length(request: Request) -> int | None:
    value = request.headers.get("content-length", "")
    return int(value) if value.isdigit() else None


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Upload a file",
    openapi_extra=UPLOAD_BODY,
    responses=error_responses(
        Unauthorized,
        CsrfFailed,
        InvalidUpload,
        UploadIncomplete,
        UploadTimeout,
        FileTooLarge,
        StorageQuotaExceeded,
        UnsupportedFileType,
        FileMissing,
        InvalidFileName,
        FileNameTooLong,
        EmptyFile,
        CorruptFile,
        DocumentTooLarge,
        ImageTooLarge,
        StorageUnavailable,
    ),
)
async def upload_file(request: Request, user: CurrentUser, service: FileServiceDep) -> FileRead:
    """multipart/form-data with the file in a part named `file`; streamed to storage. The type
    is detected from the content: images (PNG, JPEG, WebP, GIF) and documents (PDF, DOCX,
    UTF-8 text: plain, Markdown, CSV, JSON, HTML, source code)."""
    file = await service.upload(
        user,
        body=request.stream(),
        content_type=request.headers.get("content-type"),
        content_length=_content_length(request),
    )
    return FileRead.model_validate(file)


@router.get("", summary="List my files", responses=error_responses(Unauthorized, InvalidCursor))
async def list_files(
    user: CurrentUser,
    service: FileServiceDep,
    limit: Limit = 20,
    cursor: CursorQuery = None,
    kind: Annotated[FileKind | None, Query(description="Only images or documents.")] = None,
) -> FilePage:
    """Newest first; pass `next_cursor` back for more."""
    return await service.list_files(user, limit=limit, cursor=cursor, kind=kind)


@router.get(
    "/{file_id}",
    summary="Get a file's metadata",
    responses=error_responses(Unauthorized, FileNotFound),
)
async def get_file(file: OwnedFile) -> FileRead:
    """Name, detected type, size, SHA-256, and dimensions or page count."""
    return FileRead.model_validate(file)


@router.get(
    "/{file_id}/content",
    summary="Download a file",
    response_class=Response,
    responses={
        200: {
            "description": "The bytes. Images inline as their detected media type; everything "
            "else as an `application/octet-stream` attachment (the detected type is in the "
            "file's metadata); sandboxed by Content-Security-Policy.",
            "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
        },
        **error_responses(Unauthorized, FileNotFound, StorageUnavailable),
    },
)
async def download_file(file: OwnedFile, service: FileServiceDep) -> Response:
    """The file's bytes, streamed from storage."""
    blob = await service.open_content(file)
    return BlobResponse(blob, media_type=_content_type(file), headers=content_headers(file))


@router.delete(
    "/{file_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a file",
    responses=error_responses(Unauthorized, CsrfFailed, FileNotFound, FileInUse),
)
async def delete_file(file: OwnedFile, service: FileServiceDep) -> Response:
    """Deletes the file and its bytes; its quota is free at once. A file attached to messages
    is kept (409 `file_in_use`): delete those chats first."""
    await service.delete_file(file)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


class BlobResponse(StreamingResponse):
    """Streams an opened blob and closes it, whether the client read it all or went away."""

    def __init__(self, blob: BlobStream, **kwargs: Any) -> None:
        super().__init__(blob.__aiter__(), **kwargs)
        self.blob = blob

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.blob.aclose()


def _content_type(file: File) -> str:
    # Only raster images are served as what they are. Anything else (HTML, SVG, a `.js` file,
    # a PDF) is opaque bytes to the browser: were an HTML injection ever to point a <script> or
    # a <link rel=stylesheet> at it, nosniff makes the browser refuse it outright.
    return file.media_type if file.media_type in _INLINE_TYPES else DOWNLOAD_TYPE


def content_headers(file: File) -> dict[str, str]:
    """Raster images inline, everything else as a download; never sniffed, never scripted."""
    disposition = "inline" if file.media_type in _INLINE_TYPES else "attachment"
    return {
        # RFC 6266: an ASCII fallback, then the exact name (RFC 8187 encoding).
        "Content-Disposition": (
            f'{disposition}; filename="{_ascii_name(file.name)}"; '
            f"filename*=UTF-8''{quote(file.name, safe='')}"
        ),
        "Content-Length": str(file.size_bytes),
        "Content-Security-Policy": CONTENT_CSP,
        "X-Content-Type-Options": "nosniff",
        "Cross-Origin-Resource-Policy": "same-origin",
        "ETag": f'"{file.sha256}"',
    }


def _ascii_name(name: str) -> str:
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    cleaned = "".join("_" if char in '"\\' or not char.isprintable() else char for char in folded)
    return cleaned.strip() or "file"
