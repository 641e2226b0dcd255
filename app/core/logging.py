"""JSON logs, and the request context (request id, user id) every log line carries."""

import json
import logging
import sys
from collections.abc import MutableMapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
user_id_var: ContextVar[str | None] = ContextVar("user_id", default=None)
# The scheme and Host header of the request being served ("http://127.0.0.1:8000"), as the
# client sent it: only trusted for mailed links when the host is in ALLOWED_HOSTS.
request_origin_var: ContextVar[str | None] = ContextVar("request_origin", default=None)
# The ASGI scope of the request being served, so that what records the request (the audit log:
# client IP, user agent) can read it without every service being handed the request.
request_scope_var: ContextVar[MutableMapping[str, Any] | None] = ContextVar(
    "request_scope", default=None
)

# uvicorn adds `color_message` (the message with ANSI colour codes) to its records: never logged.
_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}


def current_request_id() -> str | None:
    return request_id_var.get()


class JsonFormatter(logging.Formatter):
    """One JSON object per line; `extra=` fields are merged in."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if (request_id := request_id_var.get()) is not None:
            entry["request_id"] = request_id
        if (user_id := user_id_var.get()) is not None:
            entry["user_id"] = user_id
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever sys.stdout is at the time, so redirection (and test capture) works."""

    @property
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure_logging(*, level: str = "INFO", json_lines: bool = True) -> None:
    handler = _StdoutHandler()
    if json_lines:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's own access log would duplicate ours (and it logs query strings, which can
    # carry tokens such as ?token= on verify links).
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
