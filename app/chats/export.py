"""How a chat looks when downloaded: its file name and its Markdown rendering."""

import re
import unicodedata
from datetime import datetime

from app.chats.models import Chat, Message, MessageStatus, Role
from app.chats.modes import MODES

_EXTENSIONS = {"json": "json", "markdown": "md"}
_HEADINGS = {Role.SYSTEM: "System", Role.USER: "You", Role.ASSISTANT: "Assistant"}


def slug(title: str | None) -> str:
    """ASCII words joined by hyphens, so the name is safe in any header and file system."""
    ascii_title = unicodedata.normalize("NFKD", title or "").encode("ascii", "ignore").decode()
    words = re.findall(r"[a-z0-9]+", ascii_title.lower())
    return "-".join(words)[:60].strip("-") or "chat"


def filename(chat: Chat, exported_at: datetime, fmt: str) -> str:
    return f"parley-{slug(chat.title)}-{exported_at:%Y%m%d}.{_EXTENSIONS[fmt]}"


def markdown(chat: Chat, thread: list[Message], exported_at: datetime) -> str:
    mode = MODES.get(chat.mode)
    lines = [f"# {chat.title or 'Untitled chat'}", ""]
    lines.append(f"- Mode: {mode.title if mode else chat.mode}")
    for name, value in chat.mode_params.items():
        shown = ", ".join(map(str, value)) if isinstance(value, list) else value
        if shown not in (None, ""):
            lines.append(f"  - {name.replace('_', ' ')}: {shown}")
    lines.append(f"- Model: {chat.model or 'default'}")
    lines.append(f"- Created: {chat.created_at:%Y-%m-%d %H:%M} UTC")
    lines.append(f"- Exported: {exported_at:%Y-%m-%d %H:%M} UTC")
    if chat.system_prompt:
        lines += ["", "## System prompt", "", chat.system_prompt]
    for message in thread:
        heading = _HEADINGS.get(Role(message.role), message.role)
        details = [f"{message.created_at:%Y-%m-%d %H:%M} UTC"]
        if message.role == Role.ASSISTANT and message.model:
            details.append(message.model)
        if message.status != MessageStatus.COMPLETE:
            details.append(message.status)
        lines += ["", f"## {heading} ({', '.join(details)})", "", message.content]
    return "\n".join(lines) + "\n"
