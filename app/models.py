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
from app.chats.models import Chat, ChatTag, Message
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
from app.projects.models import Project
from app.prompts.models import Prompt
from app.sharing.models import ChatShare
from app.tools.models import ToolSetting
from app.usage.models import UsageRecord
from app.users.models import User

__all__ = [
    "AccountToken",
    "ApiKey",
    "AuditEvent",
    "AuthSession",
    "Base",
    "Chat",
    "ChatShare",
    "ChatTag",
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
    "Project",
    "Prompt",
    "RefreshToken",
    "RestrictedModel",
    "StoredResponse",
    "ToolSetting",
    "UsageRecord",
    "User",
    "UserIdentity",
]
