"""Every model, imported once so that Alembic and the mappers see the whole schema."""

from app.auth.models import (
    AccountToken,
    AuthSession,
    LoginAttempt,
    MfaRecoveryCode,
    PasswordHistory,
    RefreshToken,
)
from app.core.db import Base
from app.users.models import User

__all__ = [
    "AccountToken",
    "AuthSession",
    "Base",
    "LoginAttempt",
    "MfaRecoveryCode",
    "PasswordHistory",
    "RefreshToken",
    "User",
]
