"""One error shape for every error response, and the domain errors that produce it."""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.core.logging import current_request_id

logger = logging.getLogger("parley.errors")


class FieldError(BaseModel):
    field: str
    message: str
    type: str


class ErrorDetail(BaseModel):
    code: str
    message: str
    request_id: str | None = None
    details: list[FieldError] | None = None
    # Which check refused the content (guardrails: input_blocked, content_blocked).
    category: str | None = None


class ErrorResponse(BaseModel):
    """Every 4xx and 5xx answer has this body."""

    error: ErrorDetail


class AppError(Exception):
    """Base of every domain error: a status, a stable machine-readable code and a message."""

    status_code = 400
    code = "bad_request"
    message = "The request could not be processed."
    # Whether the request's transaction still commits when this error ends it.
    commit_changes = False
    # Set by errors about refused content: which check refused it (never the content itself).
    category: str | None = None
    # The request field the error is about, when one is (the OpenAI shape's `param`).
    param: str | None = None

    def __init__(
        self,
        message: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        details: list[FieldError] | None = None,
    ):
        self.message = message or self.message
        self.headers = headers
        # Per-field reasons, for errors about input that request validation could not check.
        self.details = details
        super().__init__(self.message)


class NotFound(AppError):
    status_code = 404
    code = "not_found"
    message = "Not found."


class Unauthorized(AppError):
    status_code = 401
    code = "not_authenticated"
    message = "Not authenticated."

    def __init__(self, message: str | None = None, *, headers: dict[str, str] | None = None):
        super().__init__(message, headers={"WWW-Authenticate": "Bearer", **(headers or {})})


class Forbidden(AppError):
    status_code = 403
    code = "forbidden"
    message = "You are not allowed to do this."


class Conflict(AppError):
    status_code = 409
    code = "conflict"
    message = "The request conflicts with the current state."


class ServiceUnavailable(AppError):
    status_code = 503
    code = "service_unavailable"
    message = "A dependency is unavailable."


OPENAI_PREFIX = "/v1"


def is_openai_path(path: str) -> bool:
    """Whether a path is under the OpenAI-compatible surface, whose errors take OpenAI's shape."""
    return path == OPENAI_PREFIX or path.startswith(OPENAI_PREFIX + "/")


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIErrorResponse(BaseModel):
    """Every 4xx and 5xx answer under /v1: OpenAI's error shape, which its SDKs read."""

    error: OpenAIErrorDetail


def openai_error_type(status_code: int) -> str:
    """OpenAI's `type` for a status, as its SDKs and clients expect it."""
    if status_code == 401:
        return "authentication_error"
    if status_code == 403:
        return "permission_error"
    if status_code == 429:
        return "rate_limit_error"
    if status_code >= 500:
        return "server_error"
    return "invalid_request_error"


def openai_error_body(
    status_code: int, code: str, message: str, *, param: str | None = None
) -> dict[str, Any]:
    detail = OpenAIErrorDetail(
        message=message, type=openai_error_type(status_code), param=param, code=code
    )
    return {"error": detail.model_dump()}


def error_response(
    status_code: int,
    code: str,
    message: str,
    *,
    details: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
    category: str | None = None,
    path: str | None = None,
    param: str | None = None,
) -> JSONResponse:
    """The error answer; under /v1 (`path`) in OpenAI's shape, everywhere else in Parley's."""
    if path is not None and is_openai_path(path):
        if param is None and details:
            param = details[0].field.removeprefix("body.")
        return JSONResponse(
            openai_error_body(status_code, code, message, param=param),
            status_code=status_code,
            headers=headers,
        )
    body = ErrorResponse(
        error=ErrorDetail(
            code=code,
            message=message,
            request_id=current_request_id(),
            details=details,
            category=category,
        )
    )
    return JSONResponse(
        body.model_dump(exclude_none=True), status_code=status_code, headers=headers
    )


def error_responses(*errors: type[AppError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for a route, listing the codes each status can carry."""
    by_status: dict[int, list[type[AppError]]] = {}
    for error in errors:
        by_status.setdefault(error.status_code, []).append(error)
    return {
        status: {
            "model": ErrorResponse,
            "description": "; ".join(f"`{e.code}`: {e.message}" for e in group),
        }
        for status, group in sorted(by_status.items())
    }


_HTTP_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


# Validation errors raised as PydanticCustomError(<code>, ...) by a field's own validator, each
# documented on the routes whose input can break it.
DOMAIN_VALIDATION_CODES = frozenset({"invalid_email", "unknown_mode"})
MALFORMED_JSON_MESSAGE = "The request body is not valid JSON (or not UTF-8)."
CURSOR_MESSAGE = "The cursor is malformed or belongs to another listing; start from the first page."


def _field_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


async def _app_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    if exc.status_code == 429:
        runtime = getattr(request.app.state, "runtime", None)
        if runtime is not None:
            runtime.metrics.rate_limited.labels(exc.code).inc()
    return error_response(
        exc.status_code,
        exc.code,
        exc.message,
        details=exc.details,
        headers=exc.headers,
        category=exc.category,
        path=request.url.path,
        param=exc.param,
    )


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    path = request.url.path
    details = [
        FieldError(field=_field_path(err["loc"]), message=err["msg"], type=err["type"])
        for err in exc.errors()
    ]
    if any(d.type == "json_invalid" for d in details):
        return error_response(400, "malformed_json", MALFORMED_JSON_MESSAGE, path=path)
    if details and all(d.field == "query.cursor" for d in details):
        # A cursor is opaque to clients: whatever is wrong with it, the answer is the one code
        # that tells a frontend to start again from the first page.
        return error_response(400, "invalid_cursor", CURSOR_MESSAGE, path=path)
    summary = "; ".join(f"{d.field}: {d.message}" for d in details[:3])
    kinds = {d.type for d in details}
    if len(kinds) == 1 and (code := next(iter(kinds))) in DOMAIN_VALIDATION_CODES:
        # One domain rule broken (and nothing else): its own documented code, which tells a
        # client more than validation_error.
        return error_response(422, code, summary, details=details, path=path)
    return error_response(
        422, "validation_error", f"Invalid input: {summary}", details=details, path=path
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    path = request.url.path
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else "Request failed."
    if exc.status_code == 400 and isinstance(exc.__cause__, ValueError):
        # FastAPI could not decode the body (not UTF-8): the same answer as for broken JSON.
        return error_response(400, "malformed_json", MALFORMED_JSON_MESSAGE, path=path)
    if exc.status_code == 404 and message == "Not Found":
        message = "No such endpoint."
    headers = dict(exc.headers) if exc.headers else None
    return error_response(exc.status_code, code, message, headers=headers, path=path)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
