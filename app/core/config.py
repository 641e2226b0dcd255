"""Settings, read from the environment and `.env` (see `.env.example` for every one)."""

import os
import re
from functools import lru_cache
from ipaddress import ip_network
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from limits import parse_many
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
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


class EnvValue(BaseModel):
    """A value read from the environment when it is used: {"env": "NAME", "prefix": "..."}."""

    model_config = ConfigDict(extra="forbid")

    env: str
    prefix: str = ""

    def resolve(self) -> str | None:
        value = os.environ.get(self.env)
        return None if value is None else self.prefix + value


class ServerSettings(BaseSettings):
    """The server itself: environment, secrets, database, CORS, metrics and API docs, logs,
    request size, HSTS."""

    environment: Literal["development", "test", "production"] = "development"
    secret_key: str = DEFAULT_SECRET_KEY
    database_url: str = "sqlite+aiosqlite:///./parley.db"
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    db_echo: bool = False
    cors_origins: Annotated[list[str], NoDecode] = []

    # Serve Prometheus metrics at /metrics.
    metrics_enabled: bool = True
    # Scrapers send `Authorization: Bearer <METRICS_TOKEN>`. Unset: /metrics is open outside
    # production, and answers 404 in production (metrics tell who uses which model how much).
    metrics_token: SecretStr | None = None
    # Swagger UI (/docs), ReDoc (/redoc) and the schema (/openapi.json). Unset: served outside
    # production, not in production.
    docs_enabled: bool | None = None

    log_level: str = "INFO"
    log_json: bool = True
    # The largest request body (and WebSocket message) accepted, in bytes: larger ones are 413
    # from their Content-Length before anything is read, or cut off once a chunked body passes
    # it. File uploads have their own limit.
    max_request_bytes: int = Field(default=1_048_576, ge=1024, le=64 * 1024 * 1024)
    hsts_seconds: int = Field(default=63_072_000, ge=0)  # sent in production only


class AuthSettings(BaseSettings):
    """Accounts and sign-in: tokens, password hashing and rules, verification, reset, lockout,
    MFA (app/auth)."""

    # Fractions allowed (0.5: 30 s), for tests and short-lived deployments.
    access_token_minutes: float = Field(default=15, gt=0)
    refresh_token_days: int = Field(default=30, ge=1)
    bcrypt_rounds: int = Field(default=12, ge=4, le=16)
    # Linux: how much lower the hashing threads' priority is than the event loop's (0: same).
    password_hash_nice: int = Field(default=10, ge=0, le=19)
    cookie_secure: bool | None = None  # None: Secure everywhere except development
    password_min_score: int = Field(default=3, ge=0, le=4)
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


class MailSettings(BaseSettings):
    """Mail and the links it carries (app/mail)."""

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
    # A frontend on its own origin: the verification and reset links in mails open its pages
    # `{FRONTEND_URL}/verify-email?token=...` and `{FRONTEND_URL}/reset-password?token=...`.
    # Unset: Parley's own pages under PUBLIC_BASE_URL (app/mail/templates.py).
    frontend_url: str | None = None
    # Hosts (comma-separated, no port) whose address may be used for mailed links when
    # FRONTEND_URL is unset: a user who signs up at http://127.0.0.1:8000 gets links to it. A
    # request from any other Host gets PUBLIC_BASE_URL (a forged Host cannot poison a link).
    allowed_hosts: Annotated[list[str], NoDecode] = ["localhost", "127.0.0.1", "::1"]


class GenerationSettings(BaseSettings):
    """Replies: the upstream model servers, streaming, rejoining, idempotent sends
    (app/generation, docs/upstreams.md)."""

    # The default upstream (any OpenAI-compatible /v1 endpoint). Unset: the built-in echo model.
    llm_base_url: str | None = None
    llm_api_key: SecretStr | None = None
    llm_model: str | None = None  # the upstream's model id, also the name users see
    llm_context_length: int = Field(default=8192, ge=256)
    # Whether LLM_MODEL sees images (a vision model): images are sent to vision models only.
    llm_vision: bool = False
    # More named models, as JSON: {"name": {"base_url": ..., "api_key": ..., "model": ...,
    # "context_length": ..., "vision": true}}. Each may point at a different upstream.
    llm_models: dict[str, dict[str, Any]] = {}
    # The same as a YAML or JSON file (LLM_MODELS entries win over the file's of the same name).
    llm_models_file: Path | None = None
    # Routing across a model's deployments (docs/upstreams.md#routing): the strategy; fallback
    # models per model ({"big": ["small"]}); failures within the window that cool a deployment
    # down, and for how long; the deployments one reply tries per model.
    llm_routing: Literal["weighted", "least-busy", "latency", "usage"] = "weighted"
    llm_fallbacks: dict[str, list[str]] = {}
    llm_allowed_fails: int = Field(default=3, ge=1)
    llm_fail_window_seconds: float = Field(default=60.0, gt=0)
    llm_cooldown_seconds: float = Field(default=10.0, gt=0)
    llm_max_attempts: int = Field(default=3, ge=1, le=20)
    # The model used when a chat or request names none (default: LLM_MODEL, else echo).
    default_model: str | None = None
    llm_connect_timeout: float = Field(default=5.0, gt=0)
    llm_first_token_timeout: float = Field(default=60.0, gt=0)
    llm_idle_timeout: float = Field(default=60.0, gt=0)
    llm_max_connections: int = Field(default=1000, ge=1)
    # Idle upstream connections are closed after this; keep it below the upstream's own idle
    # timeout (vLLM and other uvicorn servers: 5 s).
    llm_keepalive_seconds: float = Field(default=3.0, gt=0)
    # How upstream connections are made: `fast`, Parley's plain-asyncio network backend for
    # httpcore (less CPU per relayed token); `httpx`, httpx's stock transport (anyio), the way
    # back should a library upgrade ever break the fast one.
    upstream_transport: Literal["fast", "httpx"] = "fast"
    # The other fast paths on library internals, each with the same way back: `fast`, or the
    # library's own. SQLite connections: Parley's one-trip aiosqlite connection (app/core/sqlite.py)
    # or `aiosqlite`'s stock one. SSE frames: Parley's sender without a cancel scope per frame
    # (app/generation/reply_events.py) or `sse-starlette`'s own.
    sqlite_connection: Literal["fast", "aiosqlite"] = "fast"
    sse_sender: Literal["fast", "sse-starlette"] = "fast"
    # Seconds between the echo model's tokens.
    echo_token_delay: float = Field(default=0.02, ge=0)
    # Partial replies are saved at least this often while streaming (a crash loses no more).
    stream_checkpoint_seconds: float = Field(default=2.0, gt=0)
    # A reply still `streaming` but not checkpointed for this long (and five checkpoints) lost
    # its process and is marked `interrupted`, at start-up and by a periodic sweep.
    stream_stale_seconds: float = Field(default=30.0, gt=0)
    # SSE keep-alive comment interval.
    sse_ping_seconds: float = Field(default=15.0, gt=0)
    # Resumable replies (docs/streaming.md#rejoining-a-reply). When a reply's last client goes
    # away: `cancel` it once REPLY_RESUME_GRACE_SECONDS pass with nobody rejoining, or `finish`
    # it (it completes and is saved). A reply's events stay REPLY_BUFFER_SECONDS after it ends
    # for clients rejoining (in Redis with REDIS_URL, capped at REPLY_BUFFER_MAX_ENTRIES
    # entries per reply; in the worker's memory otherwise).
    reply_on_disconnect: Literal["cancel", "finish"] = "cancel"
    reply_resume_grace_seconds: float = Field(default=30.0, ge=0, le=3600)
    reply_buffer_seconds: float = Field(default=300.0, gt=0, le=86_400)
    reply_buffer_max_entries: int = Field(default=10_000, ge=100)
    # A send with an Idempotency-Key is answered with the same reply when retried within this.
    idempotency_key_hours: float = Field(default=24.0, gt=0, le=24 * 30)


class GuardrailSettings(BaseSettings):
    """The guardrails (app/guardrails, docs/guardrails.md)."""

    # Guardrails: the longest message or prompt accepted, and regexes refused in input.
    max_input_chars: int = Field(default=32_000, ge=1)
    blocked_patterns: list[str] = []
    # Which checks run where (comma-separated): on the user's input, on untrusted text entering
    # the prompt (attachments, retrieved chunks), and on replies as they stream. Checks:
    # max_input_chars, blocked_patterns (input and output), pii, injection (untrusted).
    guardrails_input: Annotated[list[str], NoDecode] = [
        "max_input_chars",
        "blocked_patterns",
        "pii",
    ]
    guardrails_untrusted: Annotated[list[str], NoDecode] = ["pii", "injection"]
    guardrails_output: Annotated[list[str], NoDecode] = []
    # Per mode, narrower lists, as JSON: {"summarize": {"output": [], "input": ["pii"]}}.
    guardrails_modes: dict[str, dict[str, list[str]]] = {}
    # What the `pii` check does with each kind: allow, redact (a typed placeholder goes
    # upstream; the stored message keeps the original), or block.
    pii_email: Literal["allow", "redact", "block"] = "allow"
    pii_phone: Literal["allow", "redact", "block"] = "allow"
    pii_payment_card: Literal["allow", "redact", "block"] = "redact"
    pii_iban: Literal["allow", "redact", "block"] = "redact"
    pii_secret: Literal["allow", "redact", "block"] = "redact"  # noqa: S105 - a policy
    # A guard model (a name from the model config) that judges input and/or replies, and the
    # prompt format it speaks; openai_moderation calls the upstream's /v1/moderations.
    guard_model: str | None = None
    guard_format: Literal["llama_guard", "shieldgemma", "granite_guardian", "openai_moderation"] = (
        "llama_guard"
    )
    guard_on: Literal["input", "output", "both"] = "input"
    # When the guard model cannot be reached: closed refuses (503 guard_unavailable), open
    # allows (and logs it).
    guard_fail_mode: Literal["closed", "open"] = "closed"
    guard_timeout: float = Field(default=5.0, gt=0)
    # Reply text is released to the client only once checked; this many of the newest tokens
    # (about a sentence) are held back meanwhile.
    guard_holdback_tokens: int = Field(default=24, ge=1, le=1000)


class UsageSettings(BaseSettings):
    """Usage and quotas (app/usage)."""

    # Tokens (prompt + completion) each user may use per UTC day; unset: no limit. Admins can
    # set a per-user quota that overrides it.
    daily_token_quota: int | None = Field(default=None, ge=0)


class ChatSettings(BaseSettings):
    """Chats (app/chats)."""

    # Give chats a generated title after their first exchange.
    auto_title: bool = True
    # A deleted chat stays this many days in the trash, where it can be restored, then it is
    # purged (app/chats/trash.py). DELETE ...?permanent=true skips the trash.
    trash_days: int = Field(default=30, ge=1, le=3650)
    # POST /api/chats/import: the largest upload accepted (bytes), a conversations.json or a .zip.
    import_max_bytes: int = Field(default=200 * 1024 * 1024, ge=1)


class FileSettings(BaseSettings):
    """Files: storage, limits, attachments and document text (app/files, docs/files.md)."""

    # Where the bytes of uploaded files live: a local directory, or S3-compatible object storage.
    file_storage: Literal["local", "s3"] = "local"
    # The local backend's directory; with S3, uploads are spooled here before they are sent.
    file_storage_dir: str = "./data/files"
    # The largest file accepted (bytes), and how much all of one user's files may hold.
    file_max_bytes: int = Field(default=20 * 1024 * 1024, ge=1)
    storage_quota_bytes: int = Field(default=1024 * 1024 * 1024, ge=0)
    # An upload (receiving, checking and storing it) taking longer than this is refused; bytes
    # of uploads older than twice this belong to a process that died and are swept away.
    file_upload_timeout_seconds: float = Field(default=600.0, gt=0)
    # S3-compatible storage (FILE_STORAGE=s3): path-style requests signed with SigV4.
    s3_bucket: str | None = None
    s3_endpoint_url: str | None = None  # unset: AWS, https://s3.<region>.amazonaws.com
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_region: str = "us-east-1"
    # Files larger than this go up as a multipart upload in parts of this size (S3's minimum
    # part is 5 MiB).
    s3_part_bytes: int = Field(default=8 * 1024 * 1024, ge=5 * 1024 * 1024)
    # Files attached to one message (or one POST /api/generate) at most.
    max_attachments: int = Field(default=10, ge=1, le=100)
    # Images sent to vision models are scaled so that their longest side is at most this.
    vision_max_side: int = Field(default=2048, ge=16, le=16384)
    # Text taken from one document: at most this many pages (PDF) and characters.
    document_max_pages: int = Field(default=100, ge=1)
    document_max_chars: int = Field(default=100_000, ge=1)
    # Images may have at most this many pixels (refused at upload, 422 image_too_large): a
    # PNG, GIF or WebP is decoded whole, up to 4 bytes a pixel, before it is scaled down.
    image_max_pixels: int = Field(default=40_000_000, ge=1024, le=178_956_970)
    # Reading one document's text (attaching it, ingesting it) may take at most this long; it
    # runs in a worker process that is killed past it (422 / failed: extraction_timeout).
    extract_max_seconds: float = Field(default=60.0, gt=0, le=3600)


class KnowledgeSettings(BaseSettings):
    """Knowledge: embeddings, retrieval, chunking, ingestion (app/knowledge, docs/knowledge.md)."""

    # An OpenAI-compatible /v1 URL that serves POST {base}/embeddings (vLLM, OpenAI, Ollama,
    # llama.cpp's server). Unset: retrieval is full text only.
    embedding_base_url: str | None = None
    embedding_api_key: SecretStr | None = None
    embedding_model: str = "text-embedding-3-small"
    # Several endpoints of the embedding model, as JSON: [{"base_url", "api_key", "name",
    # "weight"}, ...] (EMBEDDING_BASE_URL may then be left empty); failover as for chat models.
    embedding_deployments: str | None = None
    # What the model returns; a different length fails the file (dimension_mismatch). Changing
    # the model or this asks every collection to be re-indexed.
    embedding_dimensions: int = Field(default=384, ge=2, le=4096)
    # Texts per embedding request, and seconds per request (one retry before the file fails).
    embedding_batch_size: int = Field(default=64, ge=1, le=2048)
    embedding_timeout: float = Field(default=30.0, gt=0)
    # Chunks put in the prompt per message, and the cosine similarity a vector match needs.
    rag_top_k: int = Field(default=5, ge=1, le=50)
    rag_min_similarity: float = Field(default=0.2, ge=-1, le=1)
    # SQLite: read-only connections retrieval searches on, beside the one writer connection,
    # so searches run in parallel with each other and with writes (WAL). 0: on the writer's.
    rag_read_connections: int = Field(default=4, ge=0, le=64)
    # Postgres: full-text matches ranked per search at most (ranking reads each match's
    # tsvector; a query of common words matches thousands).
    rag_text_candidates: int = Field(default=1000, ge=10, le=100_000)
    # Follow-up questions are rewritten into a standalone query by the chat's model first.
    rag_query_rewrite: bool = True
    # Chunking: target tokens per chunk (about four characters a token) and their overlap.
    rag_chunk_tokens: int = Field(default=400, ge=32, le=8192)
    rag_chunk_overlap: int = Field(default=50, ge=0, le=4096)
    # A document ingested into a collection: at most this many pages (PDF), characters and
    # chunks; what is cut is said on the file.
    rag_max_pages: int = Field(default=2000, ge=1)
    rag_max_chars: int = Field(default=5_000_000, ge=1)
    rag_max_chunks: int = Field(default=5000, ge=1)
    # Ingestion: files processed at once per process, and the lease a worker holds on a file
    # (renewed while it works; a crashed worker's file is taken over once it lapses, and fails
    # after three attempts).
    ingest_workers: int = Field(default=2, ge=1, le=32)
    ingest_lease_seconds: float = Field(default=60.0, gt=0)


class McpServer(BaseModel):
    """One MCP server reached over Streamable HTTP (MCP_SERVERS)."""

    model_config = ConfigDict(extra="forbid")

    url: str
    # Header values are literal strings, or {"env": "NAME", "prefix": "Bearer "} to read a
    # secret from the environment variable NAME (so it stays out of the JSON).
    headers: dict[str, str | EnvValue] = {}
    timeout_seconds: float | None = Field(default=None, gt=0, le=3600)
    # Which of its tools pause the reply for the user's approval: none, all, or those named.
    approve: Literal["never", "always"] | list[str] = "never"

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("an MCP server's url must be an absolute http(s) URL")
        return value


class ToolSettings(BaseSettings):
    """Tools the model may call in chats: MCP servers and the built-in knowledge search
    (app/tools, docs/tools.md)."""

    # {"name": {"url", "headers", "timeout_seconds", "approve"}}: MCP servers over Streamable
    # HTTP. Their tools are discovered at start and every MCP_REFRESH_SECONDS.
    mcp_servers: dict[str, McpServer] = {}
    mcp_refresh_seconds: float = Field(default=300.0, ge=5)
    # Each tool call's limit (a server's timeout_seconds wins for its tools), the model calls
    # one reply makes with tools before it ends with tool_steps_exceeded, the characters of a
    # result the model sees (longer ones are cut, saying so), and how long a call needing
    # approval waits for the user before it is refused.
    tool_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    tool_max_steps: int = Field(default=5, ge=1, le=50)
    tool_result_max_chars: int = Field(default=20_000, ge=100, le=1_000_000)
    tool_approval_timeout_seconds: float = Field(default=300.0, gt=0, le=86_400)
    # Tools a chat of a mode is given when it names none: {"mode": ["server.tool", ...]}.
    mode_tools: dict[str, list[str]] = {}

    @field_validator("mcp_servers")
    @classmethod
    def _names(cls, value: dict[str, McpServer]) -> dict[str, McpServer]:
        for name in value:
            if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", name) or name == "parley":
                raise ValueError(
                    f"MCP_SERVERS: {name!r} must be 1-32 letters, digits, '_' or '-' "
                    "(and not 'parley', the built-in tools' server)"
                )
        return value


class AuditSettings(BaseSettings):
    """The audit log (app/audit, docs/audit.md)."""

    # Events older than this many days are purged every hour.
    audit_days: int = Field(default=365, ge=1, le=36_500)


class OidcSettings(BaseSettings):
    """Single sign-on with OpenID Connect (app/auth/oidc, docs/sso.md). Off unless OIDC_ISSUER,
    OIDC_CLIENT_ID and OIDC_CLIENT_SECRET are all set."""

    # The issuer's URL; its discovery document is read from
    # <OIDC_ISSUER>/.well-known/openid-configuration.
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: SecretStr | None = None
    oidc_scopes: str = "openid email profile"
    # The sign-in button's label: "Sign in with <OIDC_DISPLAY_NAME>".
    oidc_display_name: str = "single sign-on"
    # The ID token (or userinfo) claim that lists the user's groups at the identity provider.
    oidc_groups_claim: str | None = None
    # Members of any of these identity-provider groups are administrators (comma-separated).
    oidc_admin_groups: Annotated[list[str], NoDecode] = []
    # A first sign-in with no matching account creates one; false: only existing accounts.
    oidc_allow_signup: bool = True
    # Groups named in the groups claim that Parley lacks are created (the groups package).
    oidc_create_groups: bool = False
    # SSO users still pass Parley's own MFA when they have it on.
    oidc_require_mfa: bool = False
    # false: an SSO-only deployment, where password sign-in and registration are refused.
    password_login_enabled: bool = True

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.oidc_issuer and self.oidc_client_id and self.oidc_client_secret)


class LimitSettings(BaseSettings):
    """Rate limits and the state several workers share (Redis), proxies."""

    # Rate limits (the limits library's syntax: "10/minute", "5 per 15 minutes", several with ";").
    # Shared state for several workers: rate-limit counters, stop signals for replies, and
    # replies' events for clients rejoining elsewhere. Unset: kept in memory, per worker.
    redis_url: str | None = None
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
    # Per client IP, for the public share links (GET /api/shared/{token} and its images): a
    # reader paging through a chat is far below it, a token guesser far above.
    rate_limit_shared: str = "60/minute;600/hour"


class Settings(
    ServerSettings,
    AuthSettings,
    MailSettings,
    GenerationSettings,
    GuardrailSettings,
    UsageSettings,
    ChatSettings,
    FileSettings,
    KnowledgeSettings,
    ToolSettings,
    AuditSettings,
    OidcSettings,
    LimitSettings,
):
    """Every setting, grouped by domain in the classes above; the environment variable of each
    is its name in capitals (one flat namespace: grouping changes no name)."""

    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", case_sensitive=False, env_ignore_empty=True
    )

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        return normalise_database_url(value)

    @field_validator(
        "cors_origins", "trusted_proxies", "allowed_hosts", "oidc_admin_groups", mode="before"
    )
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("oidc_issuer")
    @classmethod
    def _issuer_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("OIDC_ISSUER must be an absolute http(s) URL")
        return value

    @field_validator("frontend_url")
    @classmethod
    def _absolute_http_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("FRONTEND_URL must be an absolute http(s) URL")
        if parts.query or parts.fragment:
            raise ValueError("FRONTEND_URL must have no query or fragment")
        return value.rstrip("/")

    @field_validator("guardrails_input", "guardrails_untrusted", "guardrails_output", mode="before")
    @classmethod
    def _split_checks(cls, value: object) -> object:
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    @model_validator(mode="after")
    def _known_checks(self) -> "Settings":
        allowed = {
            "input": {"max_input_chars", "blocked_patterns", "pii"},
            "untrusted": {"pii", "injection"},
            "output": {"blocked_patterns", "pii"},
        }
        for point, checks in (
            ("input", self.guardrails_input),
            ("untrusted", self.guardrails_untrusted),
            ("output", self.guardrails_output),
        ):
            unknown = sorted(set(checks) - allowed[point])
            if unknown:
                raise ValueError(
                    f"GUARDRAILS_{point.upper()}: unknown check(s) {', '.join(unknown)}; "
                    f"known: {', '.join(sorted(allowed[point]))}"
                )
        for mode, points in self.guardrails_modes.items():
            for point, checks in points.items():
                if point not in allowed:
                    raise ValueError(
                        f"GUARDRAILS_MODES[{mode!r}]: {point!r} is not input, untrusted or output"
                    )
                unknown = sorted(set(checks) - allowed[point] - {"guard_model"})
                if unknown:
                    raise ValueError(
                        f"GUARDRAILS_MODES[{mode!r}][{point!r}]: unknown check(s) "
                        f"{', '.join(unknown)}"
                    )
        return self

    @field_validator("blocked_patterns")
    @classmethod
    def _patterns_compile(cls, value: list[str]) -> list[str]:
        for pattern in value:
            re.compile(pattern)
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
        "rate_limit_shared",
    )
    @classmethod
    def _valid_limit(cls, value: str) -> str:
        parse_many(value)  # raises ValueError on a malformed limit
        return value

    @model_validator(mode="after")
    def _s3_complete(self) -> "Settings":
        if self.file_storage == "s3":
            missing = [
                name.upper()
                for name in ("s3_bucket", "s3_access_key_id", "s3_secret_access_key")
                if getattr(self, name) is None
            ]
            if missing:
                raise ValueError(f"FILE_STORAGE=s3 needs {', '.join(missing)}")
        return self

    @field_validator("metrics_token")
    @classmethod
    def _long_metrics_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("METRICS_TOKEN must be at least 16 characters")
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
    def api_docs_served(self) -> bool:
        if self.docs_enabled is not None:
            return self.docs_enabled
        return self.environment != "production"

    @property
    def metrics_served(self) -> bool:
        """Whether /metrics answers at all (with METRICS_TOKEN it also needs the token)."""
        return self.metrics_enabled and (
            self.metrics_token is not None or self.environment != "production"
        )

    @property
    def secure_cookies(self) -> bool:
        if self.cookie_secure is not None:
            return self.cookie_secure
        return self.environment != "development"


@lru_cache
def get_settings() -> Settings:
    return Settings()
