"""How a chat looks when downloaded: its file name and its Markdown rendering."""

import re
import unicodedata
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from app.chats.models import Chat, Message, MessageStatus, Role
from app.chats.modes import MODES
from app.files.models import File

_EXTENSIONS = {"json": "json", "markdown": "md"}
_HEADINGS = {Role.SYSTEM: "System", Role.USER: "You", Role.ASSISTANT: "Assistant"}


def slug(title: str | None) -> str:
    """ASCII words joined by hyphens, so the name is safe in any header and file system."""
    ascii_title = unicodedata.normalize("NFKD", title or "").encode("ascii", "ignore").decode()
    words = re.findall(r"[a-z0-9]+", ascii_title.lower())
    return "-".join(words)[:60].strip("-") or "chat"


def filename(chat: Chat, exported_at: datetime, fmt: str) -> str:
    return f"parley-{slug(chat.title)}-{exported_at:%Y%m%d}.{_EXTENSIONS[fmt]}"


def _size(size_bytes: int) -> str:
    if size_bytes < 1024:
        return f"{size_bytes} B"
    if size_bytes < 1024 * 1024:
        return f"{size_bytes / 1024:.0f} KB"
    return f"{size_bytes / 1024 / 1024:.1f} MB"


def _attachment_line(file: File) -> str:
    facts = [file.media_type]
    if file.width and file.height:
        facts.append(f"{file.width}x{file.height}")
    if file.page_count:
        facts.append(f"{file.page_count} page{'s' if file.page_count != 1 else ''}")
    facts.append(_size(file.size_bytes))
    return f"- {file.name} ({', '.join(facts)}, file id {file.id})"


def _cut_line(cut: dict[str, Any]) -> str:
    reasons = {
        "context_window": "did not fit in the context window",
        "model_not_vision_capable": "the model sees no images",
        "document_limits": "longer than the server reads",
    }
    what = "left out" if cut.get("cut") == "left_out" else "shortened"
    return f"- {cut.get('name')}: {what} ({reasons.get(str(cut.get('reason')), cut.get('reason'))})"


def markdown(
    chat: Chat,
    thread: list[Message],
    exported_at: datetime,
    attachments: Mapping[uuid.UUID, list[File]] | None = None,
) -> str:
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
        steps = message.tool_steps or []
        details = [f"{message.created_at:%Y-%m-%d %H:%M} UTC"]
        if message.role == Role.ASSISTANT and message.model:
            details.append(message.model)
        if message.status != MessageStatus.COMPLETE:
            details.append(message.status)
        lines += ["", f"## {heading} ({', '.join(details)})", ""]
        lines += [_tool_step_line(step) for step in steps] + ([""] if steps else [])
        lines.append(message.content)
        files = (attachments or {}).get(message.id, [])
        if files:
            lines += ["", "Attachments:", ""] + [_attachment_line(file) for file in files]
        if message.context_cuts:
            lines += ["", "Left out of this reply's prompt:", ""]
            lines += [_cut_line(cut) for cut in message.context_cuts]
        if message.sources:
            lines += ["", "Sources:", ""] + [_source_line(source) for source in message.sources]
    return "\n".join(lines) + "\n"


def _tool_step_line(step: dict[str, Any]) -> str:
    outcome = "stopped" if step.get("result") is None else "failed" if step["is_error"] else "ok"
    if step.get("approval") in ("denied", "timed_out"):
        outcome = "refused by the user" if step["approval"] == "denied" else "not approved in time"
    return f"> Tool `{step['name']}` ({outcome}): `{step['arguments'][:200]}`"


def _source_line(source: dict[str, Any]) -> str:
    where = [f"page {source['page']}"] if source.get("page") else []
    if source.get("section"):
        where.append(f"“{source['section']}”")
    return f"- {source.get('name', 'a file')}" + (f" ({', '.join(where)})" if where else "")
