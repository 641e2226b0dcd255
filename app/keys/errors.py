from app.core.errors import AppError, Conflict, FieldError, NotFound
from app.core.ratelimit import RateLimited


class InvalidApiKey(AppError):
    status_code = 401
    code = "invalid_api_key"
    message = "The API key is not valid (wrong, revoked, or its user is disabled)."

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class ApiKeyExpired(InvalidApiKey):
    code = "api_key_expired"
    message = "The API key has expired."


class ApiKeyScopeMissing(AppError):
    status_code = 403
    code = "api_key_scope_missing"
    message = "The API key has no scope for this endpoint."


class ApiKeyRateLimited(RateLimited):
    code = "api_key_rate_limited"
    message = "This API key made too many requests this minute."

    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after)
        self.message = f"This API key made too many requests; try again in {retry_after} seconds."


class ApiKeyNotFound(NotFound):
    code = "api_key_not_found"
    message = "API key not found."


class TooManyApiKeys(Conflict):
    code = "too_many_api_keys"
    message = "You have the most API keys allowed; revoke one first."


class InvalidApiKeyField(AppError):
    """A field the schema allows that a key cannot take: a past expiry, a null name."""

    status_code = 422
    code = "invalid_api_key_field"
    message = "An expiry must be in the future, and a key keeps a name."

    def __init__(self, field: str, message: str) -> None:
        super().__init__(
            f"{field}: {message}",
            details=[FieldError(field=f"body.{field}", message=message, type="value_error")],
        )
