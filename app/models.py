"""Every model, imported once so that Alembic and the mappers see the whole schema."""

from app.audit.models import AuditEvent
from app.auth.models import (
    AccountToken,
    AuthSession,
    LoginAttempt,
    MfaRecoveryCode,
    PasswordHistory,
    RefreshToken,
    UserIdentity,
)
from app.chats.models import Chat, Message
from app.core.db import Base
from app.files.models import File, FilePreview, FileText, MessageAttachment, PendingBlob
from app.generation.models import Generation, IdempotencyKey
from app.guardrails.models import ModerationEvent
from app.keys.models import ApiKey
from app.knowledge.models import Collection, CollectionFile, KnowledgeChunk, KnowledgeDocument
from app.openai_api.models import StoredResponse
from app.usage.models import UsageRecord
from app.users.models import User

__all__ = [
    "AccountToken",
    "ApiKey",
    "AuditEvent",
    "AuthSession",
    "Base",
    "Chat",
    "Collection",
    "CollectionFile",
    "File",
    "FilePreview",
    "FileText",
    "Generation",
    "IdempotencyKey",
    "KnowledgeChunk",
    "KnowledgeDocument",
    "LoginAttempt",
    "Message",
    "MessageAttachment",
    "MfaRecoveryCode",
    "ModerationEvent",
    "PasswordHistory",
    "PendingBlob",
    "RefreshToken",
    "StoredResponse",
    "UsageRecord",
    "User",
    "UserIdentity",
]
