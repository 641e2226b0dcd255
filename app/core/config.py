"""Settings, read from the environment and `.env` (see `.env.example` for every one)."""

from functools import lru_cache
from ipaddress import ip_network
from typing import Annotated, Literal

from limits import parse_many
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_SECRET_KEY = "change-me-in-production"  # noqa: S105 - the placeholder we refuse in production
MIN_SECRET_KEY_LENGTH = 32


def normalise_database_url(url: str) -> str:
    """Accept the URL shapes operators paste (postgres://, sqlite:///) and pick the async driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    if url.startswith("sqlite://") and not url.startswith("sqlite+"):
        return "sqlite+aiosqlite://" + url[len("sqlite://") :]
    return url


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    environment: Literal["development", "test", "production"] = "development"
    secret_key: str = DEFAULT_SECRET_KEY
    database_url: str = "sqlite+aiosqlite:///./parley.db"
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    db_echo: bool = False
    cors_origins: Annotated[list[str], NoDecode] = []

    log_level: str = "INFO"
    log_json: bool = True

    access_token_minutes: int = Field(default=15, ge=1)
    refresh_token_days: int = Field(default=30, ge=1)
    bcrypt_rounds: int = Field(default=12, ge=4, le=16)
    cookie_secure: bool | None = None  # None: Secure everywhere except development
    password_min_score: int = Field(default=3, ge=0, le=4)

    # Mail: without SMTP_HOST mails go to the log (and to MAIL_OUTBOX_DIR as .eml files, if set).
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)  # 587 for starttls, 465 for tls
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = "Parley <no-reply@localhost>"
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_timeout: float = Field(default=10, gt=0)
    mail_outbox_dir: str | None = None
    # Links in mails are built from this, never from the request's Host header, which a client
    # controls (a forged Host would send reset links pointing at an attacker's site).
    public_base_url: str = "http://localhost:8000"

    # Account security (see notes/README-security.md for the reasoning behind each default).
    email_verification_hours: int = Field(default=24, ge=1)
    password_reset_minutes: int = Field(default=60, ge=5, le=24 * 60)
    # Whether users must verify their email before they may chat (ChatAllowedUser).
    require_verified_email_to_chat: bool = False
    # The new password may equal none of the last N (the current one included); 0 turns it off.
    password_history: int = Field(default=5, ge=0, le=24)
    lockout_max_attempts: int = Field(default=5, ge=1)
    lockout_minutes: int = Field(default=15, ge=1)
    mfa_issuer: str = "Parley"
    mfa_challenge_minutes: int = Field(default=5, ge=1, le=30)
    # The key that encrypts TOTP secrets at rest; derived from SECRET_KEY when unset.
    mfa_encryption_key: SecretStr | None = None
    hsts_seconds: int = Field(default=63_072_000, ge=0)  # sent in production only

    # Rate limits (slowapi / limits syntax: "10/minute", "5 per 15 minutes", several with ";").
    redis_url: str | None = None  # shared rate-limit storage when set; memory otherwise
    rate_limit_enabled: bool = True
    rate_limit_strategy: Literal["fixed-window", "moving-window", "sliding-window-counter"] = (
        "moving-window"
    )
    rate_limit_key_prefix: str = "parley"
    # X-Forwarded-For is honoured only from these peers (IPs or CIDRs, comma-separated).
    trusted_proxies: Annotated[list[str], NoDecode] = []
    rate_limit_register: str = "5/minute;20/hour"
    rate_limit_login: str = "10/minute;100/hour"
    rate_limit_refresh: str = "60/minute"
    rate_limit_forgot_password: str = "5/minute;20/hour"  # noqa: S105 - a limit, not a secret
    rate_limit_reset_password: str = "10/minute"  # noqa: S105 - a limit, not a secret
    rate_limit_verify_email: str = "20/minute"
    rate_limit_resend_verification: str = "5/minute;20/hour"
    rate_limit_mfa_verify: str = "10/minute"
    # Security mails (verification, reset) one address may receive; more are dropped silently.
    rate_limit_mail_per_address: str = "5/hour"
    # Per user, for the generation endpoints (chat messages, /api/generate).
    rate_limit_generation: str = "30/minute"

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        return normalise_database_url(value)

    @field_validator("cors_origins", "trusted_proxies", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _valid_networks(cls, value: list[str]) -> list[str]:
        for entry in value:
            ip_network(entry, strict=False)  # raises ValueError with the offending entry
        return value

    @field_validator(
        "rate_limit_register",
        "rate_limit_login",
        "rate_limit_refresh",
        "rate_limit_forgot_password",
        "rate_limit_reset_password",
        "rate_limit_verify_email",
        "rate_limit_resend_verification",
        "rate_limit_mfa_verify",
        "rate_limit_mail_per_address",
        "rate_limit_generation",
    )
    @classmethod
    def _valid_limit(cls, value: str) -> str:
        parse_many(value)  # raises ValueError on a malformed limit
        return value

    @model_validator(mode="after")
    def _refuse_weak_secret_in_production(self) -> "Settings":
        if self.environment == "production" and (
            self.secret_key == DEFAULT_SECRET_KEY or len(self.secret_key) < MIN_SECRET_KEY_LENGTH
        ):
            raise ValueError(
                "SECRET_KEY must be set to a random value of at least "
                f"{MIN_SECRET_KEY_LENGTH} characters in production "
                '(python -c "import secrets; print(secrets.token_urlsafe(48))")'
            )
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def secure_cookies(self) -> bool:
        if self.cookie_secure is not None:
            return self.cookie_secure
        return self.environment != "development"


@lru_cache
def get_settings() -> Settings:
    return Settings()
