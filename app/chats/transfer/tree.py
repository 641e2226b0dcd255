"""A read conversation turned into the rows of one chat and its messages.

The source's parent links become Parley's tree: messages left out (a tool's output, an empty
root) pass their children to their nearest kept ancestor, so a regenerated answer stays a sibling
of the first. The walk is breadth-first with a queue (a 100,000-deep chain needs no recursion),
and a message never reached from a root is in a cycle: the conversation is refused.

Times: a message without one takes its parent's; each message is kept at least a microsecond
after its parent, so that the newest message is always a leaf (the tip of the thread shown).
"""

import hashlib
import uuid
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from app.chats.models import MessageStatus
from app.chats.modes import MODES
from app.chats.transfer.formats import Conversation, Turn, Unreadable

_TICK = timedelta(microseconds=1)
_TITLE_LENGTH = 200
_MODEL_LENGTH = 100
_IMPORT_ID_LENGTH = 200
# The most messages one branch of an imported chat may hold. SQLite deletes a message's
# replies through ON DELETE CASCADE, one trigger level per generation, and gives up past 1,000
# levels: a deeper chat could never be deleted there. Deeper conversations are reported instead.
MAX_DEPTH = 990


@dataclass
class ChatRows:
    """One conversation ready to write: the chat's row and its messages', parents first."""

    source: str
    import_id: str
    title: str | None
    chat: dict[str, Any]
    messages: list[dict[str, Any]]
    # Messages of the source left out (tool output, hidden or empty ones, unknown roles).
    skipped: int


def clean(text: str) -> str:
    """Text both databases store: no NUL characters, no lone surrogates."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    try:
        text.encode()
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode()
    return text


def import_id_of(source_id: str) -> str:
    """The source's id as stored (a longer one is stored as its digest)."""
    source_id = clean(source_id)
    if len(source_id) <= _IMPORT_ID_LENGTH:
        return source_id
    return "sha256:" + hashlib.sha256(source_id.encode()).hexdigest()


def _settings(conversation: Conversation) -> dict[str, Any]:
    """The chat's settings: Parley's own exports keep theirs where this server has the mode."""
    settings: dict[str, Any] = {
        "mode": "chat",
        "mode_params": {},
        "model": None,
        "system_prompt": None,
        "temperature": None,
        "top_p": None,
        "max_tokens": None,
        "pinned": False,
        "archived": False,
    }
    given = conversation.settings
    if not given:
        return settings
    mode = MODES.get(str(given.get("mode")))
    raw_params = given.get("mode_params")
    if mode is not None and isinstance(raw_params, dict | None):
        try:
            params = mode.params.model_validate(raw_params or {})
        except ValueError:
            pass
        else:
            settings["mode"] = mode.name
            settings["mode_params"] = params.model_dump(mode="json")
    for key in ("model", "system_prompt"):
        if isinstance(given.get(key), str):
            settings[key] = clean(given[key])[: _MODEL_LENGTH if key == "model" else None]
    for key, low, high in (("temperature", 0.0, 2.0), ("top_p", 0.0, 1.0)):
        value = given.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool) and low <= value <= high:
            settings[key] = float(value)
    max_tokens = given.get("max_tokens")
    if isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and max_tokens > 0:
        settings["max_tokens"] = max_tokens
    settings["pinned"] = given.get("pinned") is True
    settings["archived"] = given.get("archived") is True
    return settings


def build(conversation: Conversation, *, user_id: uuid.UUID, now: datetime) -> ChatRows:
    by_key: dict[str, Turn] = {}
    for turn in conversation.turns:
        if turn.key in by_key:
            raise Unreadable(f"The message id {turn.key[:80]!r} appears twice.")
        by_key[turn.key] = turn
    children: dict[str | None, list[Turn]] = {}
    for turn in conversation.turns:
        parent = turn.parent if turn.parent in by_key else None  # a lost parent: a new root
        children.setdefault(parent, []).append(turn)

    chat_id = uuid.uuid4()
    start = conversation.created_at or min(
        (turn.created_at for turn in conversation.turns if turn.created_at), default=now
    )
    messages: list[dict[str, Any]] = []
    skipped = 0
    reached = 0
    # Each entry: a turn, its nearest kept ancestor's (id, depth) and the time it inherits.
    queue: deque[tuple[Turn, uuid.UUID | None, int, datetime]] = deque(
        (turn, None, -1, turn.created_at or start) for turn in children.get(None, [])
    )
    while queue:
        turn, parent_id, parent_depth, inherited = queue.popleft()
        reached += 1
        created = turn.created_at or inherited
        if turn.role is None:
            skipped += turn.counted
            below: tuple[uuid.UUID | None, int, datetime] = (parent_id, parent_depth, inherited)
        else:
            if parent_depth + 1 >= MAX_DEPTH:
                raise Unreadable(
                    f"One of its branches is more than {MAX_DEPTH} messages long; Parley imports "
                    f"branches of up to {MAX_DEPTH}."
                )
            if parent_id is not None and created <= inherited:
                created = inherited + _TICK
            message_id = uuid.uuid4()
            messages.append(
                {
                    "id": message_id,
                    "chat_id": chat_id,
                    "parent_id": parent_id,
                    "depth": parent_depth + 1,
                    "role": turn.role.value,
                    "content": clean(turn.content),
                    "status": turn.status.value
                    if turn.role.value == "assistant"
                    else MessageStatus.COMPLETE.value,
                    "model": clean(turn.model)[:_MODEL_LENGTH] if turn.model else None,
                    "usage_estimated": False,
                    "created_at": created,
                    "updated_at": created,
                }
            )
            below = (message_id, parent_depth + 1, created)
        for child in children.get(turn.key, []):
            queue.append((child, *below))
    if reached < len(conversation.turns):
        raise Unreadable(
            f"Its message tree has a cycle: {len(conversation.turns) - reached} messages are "
            "their own ancestors."
        )
    if not messages:
        raise Unreadable("It has no messages to import.")
    last = max(message["created_at"] for message in messages)
    title = clean(conversation.title)[:_TITLE_LENGTH].strip() if conversation.title else None
    import_id = import_id_of(conversation.source_id)
    chat = {
        "id": chat_id,
        "user_id": user_id,
        "title": title or None,
        **_settings(conversation),
        "created_at": min(start, messages[0]["created_at"]),
        "updated_at": max(conversation.updated_at or last, last),
        "last_message_at": last,
        "import_source": conversation.source,
        "import_id": import_id,
    }
    return ChatRows(conversation.source, import_id, title, chat, messages, skipped)
