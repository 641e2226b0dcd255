"""The formats an import reads, each turned into the same plain `Conversation`.

Every reader takes one conversation as the JSON decoder gave it (dicts, lists, strings,
numbers; ijson gives `Decimal` for non-integers) and returns a Conversation whose messages name
their parent by the source's id; building the tree (cycles, depth, order) is tree.py's work.
A conversation a reader cannot make sense of raises `Unreadable` with the reason.
"""

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from app.chats.models import MessageStatus, Role

# The formats by name, as `source` in the summary and on imported chats.
CHATGPT = "chatgpt"
CLAUDE = "claude"
OPEN_WEBUI = "openwebui"
PARLEY = "parley"

EXPECTED = (
    "a conversations.json (or the .zip it came in) exported from ChatGPT or Claude, an Open WebUI "
    "chat export (JSON), or a Parley export (one chat's JSON, or the .zip of GET "
    "/api/chats/export)"
)
PARLEY_FORMAT = "parley.chat.v1"
# Claude's id for "no parent" in parent_message_uuid.
_CLAUDE_ROOT = "00000000-0000-4000-8000-000000000000"


class Unreadable(Exception):
    """A conversation that cannot be imported; the message says why."""


@dataclass
class Turn:
    """One message of the source: its id there, its parent's (None: a root), and what it says.
    `role` None means the message is left out (a tool's output, a hidden system note, an unknown
    role): its children then hang from its nearest kept ancestor."""

    key: str
    parent: str | None
    role: Role | None
    content: str = ""
    created_at: datetime | None = None
    model: str | None = None
    status: MessageStatus = MessageStatus.COMPLETE
    # False for nodes that hold no message at all (ChatGPT's root): not counted as skipped.
    counted: bool = True


@dataclass
class Conversation:
    source: str
    source_id: str
    title: str | None
    created_at: datetime | None
    updated_at: datetime | None
    turns: list[Turn]
    # The leaf of the branch the source showed last, when it says (ChatGPT's current_node).
    current: str | None = None
    # Parley's own exports: the chat's settings (mode, model, system prompt, ...).
    settings: dict[str, Any] = field(default_factory=dict)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _time(value: Any) -> datetime | None:
    """Epoch seconds (ChatGPT, Open WebUI; milliseconds or nanoseconds taken too) or ISO 8601."""
    try:
        if isinstance(value, bool) or value is None:
            return None
        if isinstance(value, int | float | Decimal):
            seconds = float(value)
            while seconds > 1e11:  # milliseconds, microseconds, nanoseconds
                seconds /= 1000
            return datetime.fromtimestamp(seconds, UTC)
        if isinstance(value, str) and value:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return None


def _id(value: Any) -> str | None:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _fallback_id(conversation: dict[str, Any]) -> str:
    """For a conversation without an id: a digest of its title and times, stable across
    exports."""
    seed = json.dumps(
        [conversation.get(key) for key in ("title", "name", "create_time", "created_at")],
        default=str,
    )
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()[:40]


def _not_included(names: list[str]) -> str:
    return "\n".join(f"[Attachment not included in the import: {name}]" for name in names)


def _join(*pieces: str) -> str:
    return "\n\n".join(piece for piece in pieces if piece.strip())


def _mapping(conversation: dict[str, Any], key: str) -> dict[str, Any]:
    value = conversation.get(key)
    if not isinstance(value, dict):
        raise Unreadable(f"`{key}` is missing or not an object.")
    return value


# --- ChatGPT --------------------------------------------------------------------------------

# Content types that are the conversation's text; the others (thoughts, browsing displays,
# execution output, custom instructions) are the product's internals.
_CHATGPT_TEXT = {"text", "multimodal_text", "code"}


def _chatgpt_part(part: Any, notes: list[str]) -> str:
    if isinstance(part, str):
        return part
    if isinstance(part, dict):
        kind = part.get("content_type")
        if kind == "audio_transcription":
            return _text(part.get("text"))
        if kind in ("image_asset_pointer", "audio_asset_pointer", "video_container_asset_pointer"):
            pointer = _text(part.get("asset_pointer")).rsplit("/", 1)[-1]
            notes.append(pointer or str(kind).replace("_asset_pointer", ""))
        elif isinstance(part.get("text"), str):
            return str(part["text"])
    return ""


def _chatgpt_turn(node_id: str, node: dict[str, Any]) -> Turn:
    parent = _id(node.get("parent"))
    message = node.get("message")
    if not isinstance(message, dict):
        return Turn(node_id, parent, None, counted=False)  # the root, or an empty node
    author = message.get("author")
    role_name = author.get("role") if isinstance(author, dict) else None
    metadata = _dict(message.get("metadata"))
    content = _dict(message.get("content"))
    kind = content.get("content_type")
    hidden = bool(metadata.get("is_visually_hidden_from_conversation"))
    recipient = message.get("recipient", "all")
    turn = Turn(node_id, parent, None, created_at=_time(message.get("create_time")))
    if (
        role_name not in ("user", "assistant", "system")
        or kind not in _CHATGPT_TEXT
        or hidden
        or recipient not in ("all", None)
    ):
        return turn  # tool output, a tool call, hidden notes, an unknown role: left out
    notes: list[str] = []
    parts = content.get("parts")
    if isinstance(parts, list):
        text = "\n".join(piece for piece in (_chatgpt_part(p, notes) for p in parts) if piece)
    else:
        text = _text(content.get("text"))
    attachments = metadata.get("attachments")
    if isinstance(attachments, list):
        for attachment in attachments:
            if isinstance(attachment, dict) and _text(attachment.get("name")):
                notes.append(str(attachment["name"]))
    if notes:
        # An image part and its attachment entry often name the same file once each.
        named = [note for note in notes if not note.startswith("file-")] or notes
        text = _join(text, _not_included(list(dict.fromkeys(named))))
    if not text.strip():
        return turn
    turn.role = Role(role_name)
    turn.content = text
    turn.model = _text(metadata.get("model_slug")) or None
    if message.get("status") == "in_progress" or (
        role_name == "assistant"
        and isinstance(metadata.get("finish_details"), dict)
        and metadata["finish_details"].get("type") == "interrupted"
    ):
        turn.status = MessageStatus.INTERRUPTED
    return turn


def read_chatgpt(conversation: dict[str, Any]) -> Conversation:
    mapping = _mapping(conversation, "mapping")
    turns = []
    for node_id, node in mapping.items():
        if not isinstance(node, dict):
            raise Unreadable(f"The mapping's node {node_id!r} is not an object.")
        turns.append(_chatgpt_turn(str(node_id), node))
    return Conversation(
        source=CHATGPT,
        source_id=_id(conversation.get("conversation_id"))
        or _id(conversation.get("id"))
        or _fallback_id(conversation),
        title=_text(conversation.get("title")) or None,
        created_at=_time(conversation.get("create_time")),
        updated_at=_time(conversation.get("update_time")),
        turns=turns,
        current=_id(conversation.get("current_node")),
    )


# --- Claude ---------------------------------------------------------------------------------


def _claude_text(message: dict[str, Any]) -> str:
    blocks = message.get("content")
    if isinstance(blocks, list) and blocks:
        texts = [
            _text(block.get("text"))
            for block in blocks
            if isinstance(block, dict) and block.get("type") == "text"
        ]
        if any(texts):
            return "\n\n".join(text for text in texts if text)
    return _text(message.get("text"))


def read_claude(conversation: dict[str, Any]) -> Conversation:
    messages = conversation.get("chat_messages")
    if not isinstance(messages, list):
        raise Unreadable("`chat_messages` is missing or not a list.")
    turns: list[Turn] = []
    previous: str | None = None
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise Unreadable(f"Message {index} is not an object.")
        key = _id(message.get("uuid")) or f"#{index}"
        if "parent_message_uuid" in message:
            parent = _id(message.get("parent_message_uuid"))
            parent = None if parent == _CLAUDE_ROOT else parent
        else:
            parent = previous  # older exports: the thread shown, in order
        sender = message.get("sender")
        role = {"human": Role.USER, "assistant": Role.ASSISTANT}.get(str(sender))
        pieces = [_claude_text(message)]
        notes: list[str] = []
        for attachment in message.get("attachments") or []:
            if not isinstance(attachment, dict):
                continue
            name = _text(attachment.get("file_name")) or "attachment"
            extracted = _text(attachment.get("extracted_content"))
            if extracted:
                pieces.append(f"Attached file {name}:\n\n{extracted}")
            else:
                notes.append(name)
        for file in message.get("files") or []:
            if isinstance(file, dict):
                notes.append(_text(file.get("file_name")) or "file")
        content = _join(*pieces, _not_included(notes))
        turns.append(
            Turn(
                key,
                parent,
                role if content.strip() else None,
                content,
                created_at=_time(message.get("created_at")),
            )
        )
        previous = key
    return Conversation(
        source=CLAUDE,
        source_id=_id(conversation.get("uuid")) or _fallback_id(conversation),
        title=_text(conversation.get("name")) or None,
        created_at=_time(conversation.get("created_at")),
        updated_at=_time(conversation.get("updated_at")),
        turns=turns,
    )


# --- Open WebUI -----------------------------------------------------------------------------


def _openwebui_content(value: Any) -> str:
    if isinstance(value, list):  # OpenAI-style content parts
        return "\n".join(
            _text(part.get("text"))
            for part in value
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return _text(value)


def read_openwebui(conversation: dict[str, Any]) -> Conversation:
    chat = _mapping(conversation, "chat")
    history = _mapping(chat, "history")
    messages = _mapping(history, "messages")
    turns = []
    for key, message in messages.items():
        if not isinstance(message, dict):
            raise Unreadable(f"Message {key!r} is not an object.")
        role_name = message.get("role")
        role = Role(role_name) if role_name in ("user", "assistant", "system") else None
        notes = []
        for file in message.get("files") or []:
            if isinstance(file, dict):
                inner = _dict(file.get("file"))
                notes.append(
                    _text(file.get("name"))
                    or _text(inner.get("filename"))
                    or _text(file.get("type"))
                    or "file"
                )
        content = _join(_openwebui_content(message.get("content")), _not_included(notes))
        model = message.get("model") or message.get("modelName")
        turns.append(
            Turn(
                _id(message.get("id")) or key,
                _id(message.get("parentId")),
                role if content.strip() else None,
                content,
                created_at=_time(message.get("timestamp")),
                model=_text(model) or None,
            )
        )
    return Conversation(
        source=OPEN_WEBUI,
        source_id=_id(conversation.get("id")) or _fallback_id(conversation),
        title=_text(conversation.get("title")) or _text(chat.get("title")) or None,
        created_at=_time(conversation.get("created_at")),
        updated_at=_time(conversation.get("updated_at")),
        turns=turns,
        current=_id(history.get("currentId")),
    )


# --- Parley ---------------------------------------------------------------------------------

_PARLEY_SETTINGS = ("mode", "mode_params", "model", "system_prompt", "temperature", "top_p")
_PARLEY_STATUS = {status.value: status for status in MessageStatus}


def read_parley(document: dict[str, Any]) -> Conversation:
    chat = _mapping(document, "chat")
    messages = document.get("messages")
    if not isinstance(messages, list):
        raise Unreadable("`messages` is missing or not a list.")
    chat_id = _id(chat.get("id"))
    try:
        uuid.UUID(str(chat_id))
    except ValueError as exc:
        raise Unreadable("The chat's `id` is not a UUID.") from exc
    turns = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise Unreadable(f"Message {index} is not an object.")
        role_name = message.get("role")
        role = Role(role_name) if role_name in ("user", "assistant", "system") else None
        names = [
            _text(attachment.get("name")) or "file"
            for attachment in message.get("attachments") or []
            if isinstance(attachment, dict)
        ]
        status = _PARLEY_STATUS.get(str(message.get("status")), MessageStatus.COMPLETE)
        turns.append(
            Turn(
                _id(message.get("id")) or f"#{index}",
                _id(message.get("parent_id")),
                role,
                _join(_text(message.get("content")), _not_included(names)),
                created_at=_time(message.get("created_at")),
                model=_text(message.get("model")) or None,
                # A reply that was still streaming when exported did not finish.
                status=MessageStatus.INTERRUPTED if status == MessageStatus.STREAMING else status,
            )
        )
    thread = document.get("thread")
    settings: dict[str, Any] = {key: chat.get(key) for key in _PARLEY_SETTINGS if key in chat}
    settings["max_tokens"] = chat.get("max_tokens")
    settings["pinned"] = chat.get("pinned") is True
    settings["archived"] = chat.get("archived") is True
    return Conversation(
        source=PARLEY,
        source_id=str(chat_id),
        title=_text(chat.get("title")) or None,
        created_at=_time(chat.get("created_at")),
        updated_at=_time(chat.get("updated_at")),
        turns=turns,
        current=_id(thread[-1]) if isinstance(thread, list) and thread else None,
        settings=settings,
    )


Reader = Callable[[dict[str, Any]], Conversation]
READERS: dict[str, Reader] = {
    CHATGPT: read_chatgpt,
    CLAUDE: read_claude,
    OPEN_WEBUI: read_openwebui,
    PARLEY: read_parley,
}


def detect(item: Any) -> str | None:
    """The format of one exported conversation, from its keys; None when none fits."""
    if not isinstance(item, dict):
        return None
    if item.get("format") == PARLEY_FORMAT:
        return PARLEY
    if isinstance(item.get("mapping"), dict):
        return CHATGPT
    if isinstance(item.get("chat_messages"), list):
        return CLAUDE
    chat = item.get("chat")
    if isinstance(chat, dict) and isinstance(chat.get("history"), dict):
        return OPEN_WEBUI
    return None


def title_of(item: Any) -> str | None:
    """A conversation's title as the summary names it, whatever the format (None: none)."""
    if not isinstance(item, dict):
        return None
    for holder in (item, item.get("chat")):
        if isinstance(holder, dict):
            for key in ("title", "name"):
                if isinstance(holder.get(key), str) and holder[key]:
                    return str(holder[key])[:200]
    return None
