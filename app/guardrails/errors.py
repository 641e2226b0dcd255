"""The errors the guardrails raise. Input refused before the upstream is called is 413 or 422;
a reply stopped by a check ends with an SSE `error` event `content_blocked` (with `category`).

`category` says which check refused (`blocked_pattern`, `email`, `payment_card`, a guard model's
category code such as `S1`), never the offending text."""

from app.core.errors import AppError


class InputTooLarge(AppError):
    status_code = 413
    code = "input_too_large"
    message = "The input is too long."


class InputBlocked(AppError):
    status_code = 422
    code = "input_blocked"
    message = "The input contains content this server does not accept."

    def __init__(self, category: str | None = None, message: str | None = None) -> None:
        super().__init__(message)
        self.category = category


class ContentBlocked(AppError):
    """A reply stopped while it streamed: the upstream request is closed, the reply is saved
    `failed` with this code, and the text that was held back is kept for administrators only."""

    status_code = 422
    code = "content_blocked"
    message = "The reply was stopped: it contains content this server does not allow."

    def __init__(self, category: str, message: str | None = None) -> None:
        super().__init__(message)
        self.category = category


class GuardUnavailable(AppError):
    """The guard model could not be reached and GUARD_FAIL_MODE is `closed`."""

    status_code = 503
    code = "guard_unavailable"
    message = "The content guard cannot be reached; try again shortly."
