"""One normalisation for every email address that enters Parley: register, sign-in, the OAuth2
form, forgot password, resend verification, an email change, the admin search and the CLI.
Addresses are stored in this form, so the same mailbox is always the same account."""

import unicodedata
from typing import Annotated

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, Field, StringConstraints

MAX_EMAIL_LENGTH = 320


def normalise_email(value: str) -> str:
    """The stored form of a valid address (NFC local part, IDNA-mapped domain, lower case), or
    ValueError saying why it is not one."""
    try:
        result = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from exc
    return result.normalized.lower()


def canonical_email(value: str) -> str:
    """normalise_email() for a valid address; for anything else (which no account can have)
    the same compatibility folding, so that look-ups and lockout keys never depend on how an
    address was typed. Never raises: sign-in must not tell a malformed address apart."""
    try:
        return normalise_email(value)
    except ValueError:
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
    Field(json_schema_extra={"format": "email"}),
]
