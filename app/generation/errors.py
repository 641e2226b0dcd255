"""Every error the generation package raises: its HTTP status, stable code and default message.

During a streamed reply the same errors reach the client as an SSE `error` event with the code.
"""

from app.core.errors import AppError, Conflict

# Raised by the guardrails' input checks; re-exported where the generation errors are read.
from app.guardrails.errors import InputBlocked as InputBlocked
from app.guardrails.errors import InputTooLarge as InputTooLarge

# --- Refused before the upstream is called ------------------------------------------------------


class UnknownModel(AppError):
    # 404 whether the model does not exist or is restricted to groups the user is not in: the
    # same answer, so a restricted model's name is not disclosed.
    status_code = 404
    code = "unknown_model"
    message = "No such model. GET /api/models lists the available ones."


class PromptTooLong(AppError):
    status_code = 422
    code = "prompt_too_long"
    message = "The message does not fit in the model's context window."


class ModelNotVisionCapable(AppError):
    status_code = 422
    code = "model_not_vision_capable"
    message = "This model does not see images; pick a vision model (GET /api/models)."

    def __init__(self, model: str, image: str) -> None:
        super().__init__(
            f"“{image}” is an image, and the model '{model}' does not see images; pick a model "
            'marked "vision": true in GET /api/models, or attach no images.'
        )


class ImageRequired(AppError):
    status_code = 422
    code = "image_required"
    message = "The image mode needs an image: attach one (`attachments`)."


class ReplyInProgress(Conflict):
    code = "generation_in_progress"
    message = "A reply is already being generated in this chat; stop it or wait for it to end."


# --- Rejoining replies and idempotent sends -----------------------------------------------------


class ReplyNotResumable(Conflict):
    code = "reply_not_resumable"
    message = (
        "The reply's events are not available from this server (it streams on a worker this "
        "one cannot reach); the reply as saved so far is attached."
    )


class InvalidLastEventId(AppError):
    status_code = 400
    code = "invalid_last_event_id"
    message = "Last-Event-ID must be the number of an event of this reply."


class InvalidIdempotencyKey(AppError):
    status_code = 400
    code = "invalid_idempotency_key"
    message = "The Idempotency-Key header must be 1 to 255 visible ASCII characters."


class IdempotencyKeyReused(AppError):
    status_code = 422
    code = "idempotency_key_reused"
    message = "This Idempotency-Key was used for a different request; use a new key."


class IdempotencyKeyInProgress(Conflict):
    code = "idempotency_key_in_progress"
    message = "A request with this Idempotency-Key is still being processed; retry shortly."


# --- A reply that failed ------------------------------------------------------------------------


class ReplyFailed(AppError):
    """A reply answered as JSON that ended in failure, with the failure's own status and code."""

    status_code = 502
    code = "generation_failed"

    def __init__(
        self, message: str | None, *, status_code: int, code: str, category: str | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.category = category


class ReplyCrashed(AppError):
    """Something other than the upstream ended a reply (a bug): logged, and the reply failed."""

    code = "internal_error"
    message = "The reply failed unexpectedly."


# --- The upstream failed ------------------------------------------------------------------------


class UpstreamError(AppError):
    """Base of every failure to get a reply from a model server."""

    status_code = 502
    code = "upstream_error"
    message = "The model server failed."


class UpstreamUnavailable(UpstreamError):
    code = "upstream_unavailable"
    message = "The model server cannot be reached."


class UpstreamHTTPError(UpstreamError):
    code = "upstream_http_error"
    message = "The model server refused the request."

    def __init__(
        self, message: str | None = None, *, upstream_status: int, retry_after: float | None = None
    ):
        super().__init__(message)
        self.upstream_status = upstream_status
        # Seconds the upstream asked to be left alone for (its Retry-After), if it said.
        self.retry_after = retry_after


class UpstreamTimeout(UpstreamError):
    status_code = 504
    code = "upstream_timeout"
    message = "The model server took too long to answer."


class UpstreamProtocolError(UpstreamError):
    code = "upstream_protocol_error"
    message = "The model server sent something that is not a chat completion stream."


class UpstreamStreamError(UpstreamError):
    code = "upstream_stream_error"
    message = "The model server reported an error during the reply."


class UpstreamIncomplete(UpstreamError):
    code = "upstream_incomplete"
    message = "The model server ended the reply before it was complete."


class ToolStepsExceeded(AppError):
    status_code = 422
    code = "tool_steps_exceeded"
    message = (
        "The model kept calling tools past TOOL_MAX_STEPS steps; the reply ends with what was "
        "said so far."
    )


class ApprovalNotPending(Conflict):
    code = "approval_not_pending"
    message = "No call of this reply waits for an approval with this id."
