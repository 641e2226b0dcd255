"""ASGI middleware: request ids, one access-log line per request, and the last-resort 500."""

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import error_response
from app.core.logging import request_id_var, user_id_var
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
                    500, "internal_error", "Something went wrong on our side."
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
            user_id_var.reset(user_id_token)
            request_id_var.reset(request_id_token)
