"""One normalisation for every email address that enters Parley: register, sign-in, the OAuth2
form, forgot password, resend verification, an email change, the admin search and the CLI.
Addresses are stored in this form, so the same mailbox is always the same account."""

import unicodedata
from typing import Annotated

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, Field, StringConstraints
from pydantic_core import PydanticCustomError

from app.core.errors import AppError
from app.core.text import NOT_BLANK_PATTERN

MAX_EMAIL_LENGTH = 320


class InvalidEmail(AppError):
    """Documents the refusal in routes' responses; request validation produces it (below)."""

    status_code = 422
    code = "invalid_email"
    message = "This is not an email address Parley can send mail to."


def normalise_email(value: str) -> str:
    """The stored form of a valid address (NFC local part, IDNA-mapped domain, lower case), or
    a ValueError of type `invalid_email` saying why it is not one. Some addresses the RFCs allow
    are refused too (reserved domains such as .arpa or .local, which no mail reaches)."""
    try:
        result = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise PydanticCustomError(InvalidEmail.code, str(exc)) from exc
    return result.normalized.lower()


def canonical_email(value: str) -> str:
    """normalise_email() for a valid address; for anything else (which no account can have)
    the same compatibility folding, so that look-ups and lockout keys never depend on how an
    address was typed. Never raises: sign-in must not tell a malformed address apart."""
    try:
        return normalise_email(value)
    except (ValueError, PydanticCustomError):
        return unicodedata.normalize("NFKC", value.strip()).lower()


# An address to store: must be valid (422 otherwise).
Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=MAX_EMAIL_LENGTH),
    AfterValidator(normalise_email),
    Field(json_schema_extra={"format": "email"}),
]
# An address to look up (sign-in): any string, folded the same way.
EmailLookup = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_EMAIL_LENGTH),
    AfterValidator(canonical_email),
    # Blank is refused by the length check after stripping; NUL is accepted (and no account has
    # it), but neither is an address.
    Field(json_schema_extra={"format": "email", "pattern": NOT_BLANK_PATTERN}),
]
