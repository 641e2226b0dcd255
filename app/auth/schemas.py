import uuid
from datetime import datetime
from typing import Annotated, Literal

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from app.auth.passwords import MAX_LENGTH, MIN_LENGTH


def normalise_email(value: str) -> str:
    try:
        result = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from exc
    return result.normalized.lower()


Email = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=320), AfterValidator(normalise_email)
]
DisplayName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
NewPassword = Annotated[str, Field(min_length=MIN_LENGTH, max_length=MAX_LENGTH)]
# Checked against a hash only, but bounded so nobody makes us hash a megabyte.
AnyPassword = Annotated[str, Field(min_length=1, max_length=1024)]


class RegisterRequest(BaseModel):
    email: Email
    display_name: DisplayName
    password: NewPassword


class LoginRequest(BaseModel):
    email: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=320)]
    password: AnyPassword


class RefreshRequest(BaseModel):
    refresh_token: Annotated[str | None, Field(max_length=512)] = Field(
        default=None, description="Omit to use the refresh cookie."
    )


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    display_name: str
    role: str
    is_active: bool
    email_verified: bool = False
    created_at: datetime


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 scheme name
    expires_in: int = Field(description="Seconds until the access token expires.")
    refresh_expires_in: int = Field(description="Seconds until the refresh token expires.")
    session_id: uuid.UUID
    user: UserRead


class SessionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    user_agent: str | None
    ip_address: str | None
    current: bool = False
