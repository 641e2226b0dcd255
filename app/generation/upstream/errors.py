"""What an upstream says when it fails, made fit to show a user and turned into Parley's errors.

Error bodies come in several shapes (`{"error": {...}}`, `{"detail": ...}`, plain text, HTML
pages) and may carry stack traces and file paths, which never reach a user.
"""

import json
import logging
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from app.generation.errors import UpstreamHTTPError, UpstreamUnavailable

logger = logging.getLogger("parley.upstream")

_MAX_MESSAGE = 500
_MAX_ERROR_BODY = 64 * 1024
_TRACEBACK_START = re.compile(r"^\s*Traceback \(most recent call last\)")
_STACK_LINE = re.compile(r"^(\s*File \"|\s+at\s|\s*[\^~]+\s*$)")
# An absolute path: "/x/y..." not preceded by something that makes it part of a URL or a word.
_POSIX_PATH = re.compile(r"(?<![\w:/.~-])/(?:[\w.@+-]+/)+[\w.@+-]*")
_WINDOWS_PATH = re.compile(r"\b[A-Za-z]:\\(?:[^\\\s\"']+\\)*[^\\\s\"']*")
_HTML_TAG = re.compile(r"<[^>]+>")


def _strip_stack_traces(text: str) -> str:
    """Drop Python tracebacks (keeping their final `SomeError: message` line) and stack frames."""
    kept: list[str] = []
    in_traceback = False
    for line in text.splitlines():
        if _TRACEBACK_START.match(line):
            in_traceback = True
            continue
        if in_traceback:
            # Frames and their source lines are indented; the exception line that ends it is not.
            if line[:1].isspace() or not line.strip():
                continue
            in_traceback = False
        if _STACK_LINE.match(line):
            continue
        kept.append(line)
    return "\n".join(kept)


def sanitise_upstream_message(text: str) -> str:
    """Make an upstream's error text fit to show a user: no stack traces, no paths, not too long."""
    if "<html" in text[:200].lower():
        text = _HTML_TAG.sub(" ", text)
    text = _strip_stack_traces(text)
    text = _POSIX_PATH.sub("<path>", text)
    text = _WINDOWS_PATH.sub("<path>", text)
    text = " ".join(text.split())
    if len(text) > _MAX_MESSAGE:
        text = text[: _MAX_MESSAGE - 1].rstrip() + "…"
    return text


def message_from_json(value: Any) -> str | None:
    """The human message inside the error shapes OpenAI, vLLM, LiteLLM and FastAPI servers use."""
    if isinstance(value, str):
        return value
    if not isinstance(value, dict):
        return None
    error = value.get("error")
    if isinstance(error, dict):
        return message_from_json(error)
    if isinstance(error, str):
        return error
    for key in ("message", "detail"):
        field = value.get(key)
        if isinstance(field, str):
            return field
        if field is not None:
            return json.dumps(field, ensure_ascii=False)
    return None


def upstream_message(body: str) -> str:
    """The upstream's own explanation from an error body of any shape, sanitised."""
    try:
        message = message_from_json(json.loads(body)) or body
    except ValueError:
        message = body
    return sanitise_upstream_message(message) or "no details given"


async def read_error_body(response: httpx.Response) -> str:
    """Read at most `_MAX_ERROR_BODY` bytes: an error page is not worth unbounded memory."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= _MAX_ERROR_BODY:
            break
    return b"".join(chunks)[:_MAX_ERROR_BODY].decode(response.encoding or "utf-8", "replace")


def unavailable(exc: httpx.TransportError) -> UpstreamUnavailable:
    # The socket's own words ("[Errno 111] Connection refused") mean nothing to the person
    # chatting: they go to the log, under the request id the error carries, not to the client.
    detail = sanitise_upstream_message(str(exc)) or type(exc).__name__
    logger.warning(
        "the model server cannot be reached", extra={"detail": detail, "kind": type(exc).__name__}
    )
    return UpstreamUnavailable("The model server cannot be reached. Try again in a moment.")


def http_error(status: int, body: str, retry_after: str | None = None) -> UpstreamHTTPError:
    return UpstreamHTTPError(
        f"The model server answered {status}: {upstream_message(body)}",
        upstream_status=status,
        retry_after=_seconds(retry_after),
    )


def _seconds(retry_after: str | None) -> float | None:
    """Retry-After in seconds (its HTTP-date form counted from now), None if absent or odd."""
    if not retry_after:
        return None
    try:
        return max(0.0, float(retry_after.strip()))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(retry_after)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
