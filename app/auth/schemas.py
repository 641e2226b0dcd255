import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import Form
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.auth.passwords import MAX_LENGTH, MIN_LENGTH
from app.core.emails import MAX_EMAIL_LENGTH, Email, EmailLookup
from app.core.text import NoNul

DisplayName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100), NoNul
]
NewPassword = Annotated[str, Field(min_length=MIN_LENGTH, max_length=MAX_LENGTH)]
# Checked against a hash only, but bounded so nobody makes us hash a megabyte.
AnyPassword = Annotated[str, Field(min_length=1, max_length=1024)]


class RegisterRequest(BaseModel):
    # Swagger's "Try it out" sends this as written: it must pass the password checker.
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "email": "ada@example.com",
                    "display_name": "Ada",
                    "password": "Blue-kettle-sings-at-dawn-42",
                }
            ]
        }
    )

    email: Email
    display_name: DisplayName
    password: NewPassword


class LoginRequest(BaseModel):
    email: EmailLookup
    password: AnyPassword


class PasswordForm:
    """The OAuth2 password grant's form (RFC 6749, 4.3.2): `username` is the email. Other
    fields of the grant (scope, client credentials) are accepted and ignored."""

    def __init__(
        self,
        username: Annotated[str, Form(min_length=1, max_length=MAX_EMAIL_LENGTH)],
        password: Annotated[str, Form(min_length=1, max_length=1024)],
        grant_type: Annotated[Literal["password"], Form()] = "password",
    ) -> None:
        self.username = username
        self.password = password
        self.grant_type = grant_type


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
    mfa_enabled: bool = False
    created_at: datetime


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth2 scheme name
    expires_in: int = Field(description="Seconds until the access token expires.")
    refresh_expires_in: int = Field(description="Seconds until the refresh token expires.")
    session_id: uuid.UUID
    csrf_token: str = Field(
        description="Echo in the X-CSRF-Token header on unsafe requests authenticated by cookie "
        "(also set in the `parley_csrf` cookie)."
    )
    user: UserRead


class MfaChallenge(BaseModel):
    """The password was right and the account has MFA: finish at POST /api/auth/mfa/verify."""

    mfa_required: Literal[True] = True
    challenge_token: str
    expires_in: int = Field(description="Seconds the challenge stays valid.")


class SessionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    user_agent: str | None
    ip_address: str | None
    current: bool = False


# Mailed tokens are 43 characters; the bound keeps junk from reaching the database.
LinkToken = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256), NoNul
]
MfaCode = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64),
    NoNul,
    Field(description="A 6-digit code from the authenticator app, or a recovery code."),
]


class VerifyEmailRequest(BaseModel):
    token: LinkToken


class EmailVerified(BaseModel):
    email: str
    email_verified: Literal[True] = True


class EmailRequest(BaseModel):
    email: Email


class Accepted(BaseModel):
    """The same answer whether or not an account has the email."""

    status: Literal["accepted"] = "accepted"
    message: str


class ResetPasswordRequest(BaseModel):
    token: LinkToken
    new_password: NewPassword


class ChangePasswordRequest(BaseModel):
    current_password: AnyPassword
    new_password: NewPassword


class MfaSetupRead(BaseModel):
    secret: str = Field(description="Base32 secret, for typing into an authenticator app.")
    otpauth_uri: str = Field(description="otpauth://totp/... URI; the QR code encodes it.")
    qr_svg: str = Field(description="The otpauth URI as a QR code, an inline SVG element.")


class MfaEnableRequest(BaseModel):
    code: MfaCode
    password: AnyPassword


class RecoveryCodes(BaseModel):
    recovery_codes: list[str] = Field(
        description="Ten single-use codes, shown this once; each replaces a TOTP code once."
    )


class MfaVerifyRequest(BaseModel):
    challenge_token: Annotated[str, StringConstraints(min_length=1, max_length=2048)]
    code: MfaCode


class MfaDisableRequest(BaseModel):
    password: AnyPassword
    code: MfaCode
