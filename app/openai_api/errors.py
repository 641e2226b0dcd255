"""The /v1 surface's own errors; rendered in OpenAI's shape like every error under /v1
(app/core/errors.py)."""

from app.core.errors import AppError, NotFound


class ModelNotFound(NotFound):
    code = "model_not_found"
    message = "The model does not exist or you do not have access to it."
    param = "model"

    def __init__(self, model: str) -> None:
        super().__init__(
            f"The model '{model}' does not exist or you do not have access to it. "
            "GET /v1/models lists yours."
        )


class UnsupportedParameter(AppError):
    """A field Parley cannot honour (OpenAI answers its own unsupported values with 400)."""

    status_code = 400
    code = "unsupported_parameter"
    message = "This parameter is not supported."

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


class InvalidParameter(UnsupportedParameter):
    code = "invalid_value"


class ResponseNotFound(NotFound):
    code = "response_not_found"
    message = "No such response."
    param = "response_id"


class PreviousResponseNotFound(NotFound):
    code = "previous_response_not_found"
    message = "No such previous response: previous_response_id names no response of yours."
    param = "previous_response_id"
