"""Every model, imported once so that Alembic and the mappers see the whole schema."""

from app.auth.models import (
    AccountToken,
    AuthSession,
    LoginAttempt,
    MfaRecoveryCode,
    PasswordHistory,
    RefreshToken,
)
from app.chats.models import Chat, Message
from app.core.db import Base
from app.files.models import File, FilePreview, FileText, MessageAttachment, PendingBlob
from app.generation.models import Generation, IdempotencyKey
from app.groups.models import Group, GroupAdmin, GroupMember, RestrictedModel
from app.guardrails.models import ModerationEvent
from app.keys.models import ApiKey
from app.knowledge.models import (
    Collection,
    CollectionFile,
    CollectionGroup,
    KnowledgeChunk,
    KnowledgeDocument,
)
from app.openai_api.models import StoredResponse
from app.tools.models import ToolSetting
from app.usage.models import UsageRecord
from app.users.models import User

__all__ = [
    "AccountToken",
    "ApiKey",
    "AuthSession",
    "Base",
    "Chat",
    "Collection",
    "CollectionFile",
    "CollectionGroup",
    "File",
    "FilePreview",
    "FileText",
    "Generation",
    "Group",
    "GroupAdmin",
    "GroupMember",
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
    "RestrictedModel",
    "StoredResponse",
    "ToolSetting",
    "UsageRecord",
    "User",
]
