"""What a client may ask a reply for, whichever way it comes (HTTP, the WebSocket, the stateless
endpoint): one type per request, all taken by GenerationService.reply().

`identity()` is what makes two requests "the same" for an Idempotency-Key: the operation, what
it names and what it says, as parsed (so JSON spacing, key order, or SSE versus JSON answers do
not matter)."""

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from app.chats.models import Chat
from app.chats.schemas import ChatCreate
from app.generation.schemas import GenerateRequest

ReplyKind = Literal["message", "generation"]


def _ids(values: Sequence[uuid.UUID] | None) -> list[str] | None:
    return None if values is None else [str(value) for value in values]


@dataclass(frozen=True, kw_only=True)
class SendMessage:
    """A new user message in a chat, and its reply."""

    chat: Chat
    content: str
    model: str | None = None
    parent_id: uuid.UUID | None = None
    attachments: Sequence[uuid.UUID] = ()
    # The message's own collections, replacing the chat's (the user's; None: the chat's).
    collection_ids: Sequence[uuid.UUID] | None = None
    # The message's own tools, replacing the chat's (None: the chat's).
    tool_ids: Sequence[str] | None = None

    kind: ReplyKind = "message"

    def identity(self) -> dict[str, Any]:
        return {
            "tool_ids": None if self.tool_ids is None else list(self.tool_ids),
            "send": str(self.chat.id),
            "content": self.content,
            "model": self.model,
            "parent_id": str(self.parent_id) if self.parent_id else None,
            "attachments": _ids(self.attachments),
            "collection_ids": _ids(self.collection_ids),
        }


@dataclass(frozen=True, kw_only=True)
class StartChat:
    """A new chat with its first message, and the reply."""

    data: ChatCreate
    content: str
    attachments: Sequence[uuid.UUID] = ()

    kind: ReplyKind = "message"

    def identity(self) -> dict[str, Any]:
        return {
            "start": self.data.model_dump(mode="json", exclude={"stream"}),
            "content": self.content,
            "attachments": _ids(self.attachments),
        }


@dataclass(frozen=True, kw_only=True)
class EditMessage:
    """A user message's new version (a sibling of the original), and its reply."""

    chat: Chat
    message_id: uuid.UUID
    content: str
    model: str | None = None
    # None keeps the original's attachments.
    attachments: Sequence[uuid.UUID] | None = None

    kind: ReplyKind = "message"

    def identity(self) -> dict[str, Any]:
        return {
            "edit": [str(self.chat.id), str(self.message_id)],
            "content": self.content,
            "model": self.model,
            "attachments": _ids(self.attachments),
        }


@dataclass(frozen=True, kw_only=True)
class Regenerate:
    """Another reply to the same user message."""

    chat: Chat
    message_id: uuid.UUID
    model: str | None = None

    kind: ReplyKind = "message"

    def identity(self) -> dict[str, Any]:
        return {"regenerate": [str(self.chat.id), str(self.message_id)], "model": self.model}


@dataclass(frozen=True, kw_only=True)
class Generate:
    """A mode run over a prompt, kept in the user's generation history, not in a chat."""

    body: GenerateRequest

    kind: ReplyKind = "generation"

    def identity(self) -> dict[str, Any]:
        return {"generate": self.body.model_dump(mode="json", exclude={"stream"})}


@dataclass(frozen=True, kw_only=True)
class Completion:
    """A reply to a conversation the client sends whole (the OpenAI-compatible /v1 surface):
    the client's messages go upstream as they are, with its sampling fields and tools. Kept in
    the user's generation history, or, given a chat (the `parley.chat_id` extension), saved into
    that chat as its last user message and the reply."""

    model: str | None
    # OpenAI chat messages, checked by the caller (roles, content parts, tool calls).
    messages: Sequence[dict[str, Any]]
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    # Further fields for the upstream (tools, tool_choice, response_format, seed, ...).
    extra: dict[str, Any] = field(default_factory=dict)
    chat: Chat | None = None
    collection_ids: Sequence[uuid.UUID] | None = None
    # Which /v1 endpoint asked ("chat.completions", "responses"), kept in the history.
    api: str = "chat.completions"

    @property
    def kind(self) -> ReplyKind:
        return "message" if self.chat is not None else "generation"

    def identity(self) -> dict[str, Any]:
        return {
            "complete": self.api,
            "model": self.model,
            "messages": list(self.messages),
            "sampling": [self.temperature, self.top_p, self.max_tokens],
            "extra": self.extra,
            "chat": str(self.chat.id) if self.chat is not None else None,
            "collection_ids": _ids(self.collection_ids),
        }


ReplyRequest = SendMessage | StartChat | EditMessage | Regenerate | Generate | Completion


def fingerprint(request: ReplyRequest) -> str:
    """A digest of the request's identity, kept with its Idempotency-Key."""
    payload = json.dumps(request.identity(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()
