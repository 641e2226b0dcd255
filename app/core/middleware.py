"""ASGI middleware: request ids, one access-log line per request, and the last-resort 500."""

import logging
import re
import time
import uuid

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import error_response
from app.core.logging import (
    request_id_var,
    request_origin_var,
    request_scope_var,
    user_id_var,
)
from app.core.metrics import Metrics

access_logger = logging.getLogger("parley.access")
error_logger = logging.getLogger("parley.errors")

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestContextMiddleware:
    """Accepts or makes an X-Request-ID, returns it, logs the request, and turns crashes into 500s.

    A plain ASGI middleware (not BaseHTTPMiddleware) so that streamed responses pass through
    untouched and their duration is measured to the last byte.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics | None = None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return

        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request_id_token = request_id_var.set(request_id)
        user_id_token = user_id_var.set(None)
        host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
        scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
        origin_token = request_origin_var.set(f"{scheme}://{host}" if host else None)
        scope_token = request_scope_var.set(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            error_logger.exception("unhandled error")
            if scope["type"] == "http" and not response_started:
                response = error_response(
                    500, "internal_error", "Something went wrong on our side.", path=scope["path"]
                )
                await response(scope, receive, send_with_id)
        finally:
            duration = time.perf_counter() - started
            if self.metrics is not None and scope["type"] == "http":
                route = getattr(scope.get("route"), "path", "unmatched")
                method = scope.get("method", "GET")
                self.metrics.requests.labels(method, route, str(status)).inc()
                self.metrics.latency.labels(method, route).observe(duration)
            access_logger.info(
                "request",
                extra={
                    "method": scope.get("method", "WS"),
                    "path": scope["path"],
                    "status": status if scope["type"] == "http" else None,
                    "duration_ms": round(duration * 1000, 2),
                    "client": (scope.get("client") or ("-",))[0],
                    "user_id": scope["state"].get("user_id"),
                },
            )
            request_origin_var.reset(origin_token)
            request_scope_var.reset(scope_token)
            user_id_var.reset(user_id_token)
            request_id_var.reset(request_id_token)


# JSON needs no sources at all; a browser that renders an API response anyway runs nothing.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# Swagger UI and ReDoc are served by Parley itself (app/core/apidocs.py) and started from script
# files: no other host, no inline script, no eval. Styles stay 'unsafe-inline' because ReDoc
# writes its styles into <style> elements at run time; nothing on these pages comes from users.
DOCS_CSP = (
    "default-src 'none'; "
    "script-src 'self'; "
    "style-src 'self' 'unsafe-inline'; "
    "font-src 'self'; "
    "img-src 'self' data:; "
    "connect-src 'self'; worker-src 'self' blob:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
DOCS_PATHS = ("/docs", "/redoc")


class SecurityHeadersMiddleware:
    """Adds the browser hardening headers to every HTTP response (those a route set win)."""

    def __init__(self, app: ASGIApp, *, hsts_seconds: int | None = None) -> None:
        self.app = app
        self.common: list[tuple[bytes, bytes]] = [
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
            (b"cross-origin-opener-policy", b"same-origin"),
            (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
        ]
        if hsts_seconds:
            self.common.append(
                (
                    b"strict-transport-security",
                    f"max-age={hsts_seconds}; includeSubDomains".encode(),
                )
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        docs = path.startswith(DOCS_PATHS)
        extra: list[tuple[bytes, bytes]] = [
            (b"content-security-policy", (DOCS_CSP if docs else API_CSP).encode())
        ]
        if path.startswith("/api/"):
            # Answers carry tokens and personal data: no shared or browser cache keeps them.
            extra.append((b"cache-control", b"no-store"))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for name, value in (*self.common, *extra):
                    if name not in present:
                        headers.append((name, value))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyTooLarge(HTTPException):
    """Raised from `receive` while the app reads a body past the limit. An HTTPException, so
    that FastAPI's body parsing passes it on to the error handler instead of calling it a
    parse error."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The request body is too large: the limit is {limit} bytes.")


class BodySizeLimitMiddleware:
    """Refuses request bodies past `limit` bytes without buffering them: at once from a larger
    Content-Length (the app never runs), or, for a chunked body, as soon as the bytes read pass
    the limit. uvicorn is served directly in production, so no proxy can be relied on for this.

    `limits` gives other limits to path prefixes, the longest prefix winning; None leaves the
    body to its route (uploads, which stream and refuse it themselves with their own codes).
    """

    def __init__(
        self, app: ASGIApp, *, limit: int, limits: dict[str, int | None] | None = None
    ) -> None:
        self.app = app
        self.limit = limit
        self.limits = sorted((limits or {}).items(), key=lambda item: -len(item[0]))

    def limit_for(self, path: str) -> int | None:
        return next((size for prefix, size in self.limits if path.startswith(prefix)), self.limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.limit_for(scope["path"]) if scope["type"] == "http" else None
        if limit is None:
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            exc = BodyTooLarge(limit)
            response = error_response(413, "payload_too_large", str(exc.detail), path=scope["path"])
            await response(scope, receive, send)
            return
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, receive_within_limit, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
