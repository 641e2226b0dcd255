"""The contract between the reply composer and its stages.

A reply is composed in a `ReplyPlan`: what the request asked for (the user, the chat or the mode,
the model, the user's words, files and collections) and what the stages make of it (the system
prompt's parts, the turns of history, their attachments, tools). A stage is one small class with
up to five hooks, each optional, called in the composer's order:

- `check`, before anything is stored: may refuse the request (a domain error), read files;
- `compose`, once the user's message is stored: may add system text, turns, attachments, tools;
- `before_upstream`, in the reply's task just before the upstream is called: may change the
  messages or choose the upstream, and send an event first (`sources`);
- `filter`, around the upstream's events: may hold back, rewrite or stop the stream (the output
  guard);
- `saved`, once the reply is saved: may start follow-up work (a title).

`check` and `compose` run in the request with its unit of work; `before_upstream`, `filter` and
`saved` run in the reply's task, with no database connection of the request's held: they use
short transactions of their own.
"""

import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from app.chats.models import Chat, Message
from app.chats.repository import ThreadRow
from app.files.attachments import AttachmentService, PreparedFiles
from app.files.models import File
from app.generation.prompt import Prompt, PromptAttachment, Turn
from app.generation.prompt_input import system_prompt_of
from app.generation.reply_events import ReplyEvent
from app.generation.upstream.types import ModelConfig, SamplingParams, UpstreamCall, UpstreamEvent
from app.guardrails.pipeline import PromptText
from app.guardrails.recorder import EventContext
from app.users.models import User

if TYPE_CHECKING:
    from app.generation.reply_stream import ReplyResult


class Titles(Protocol):
    """Names a chat in the background (summaries.py)."""

    def title_later(
        self,
        user_id: uuid.UUID,
        chat_id: uuid.UUID,
        first_message: str,
        config: ModelConfig,
        *,
        generate: bool = True,
    ) -> None: ...


@dataclass(frozen=True)
class RequestScope:
    """What a stage may use of the request composing the reply: its services, on the request's
    unit of work, and `commit`, to end the request's transaction before a network call."""

    attachments: AttachmentService
    titles: Titles
    commit: Callable[[], Awaitable[None]]


@dataclass(kw_only=True)
class ReplyPlan:
    """One reply being composed: the request's side first, then what the stages add."""

    user: User
    mode: str
    model: ModelConfig
    # The user's words being answered (an edit's new text, a regenerated message's old text).
    content: str
    scope: RequestScope
    chat: Chat | None = None
    # The system prompt's sources (prompt_input.py): the chat's own prompt, the user's preferred
    # one (chats only) and the mode's parameters (the chat's, or a stateless request's).
    chat_prompt: str | None = None
    preferred_prompt: str | None = None
    mode_params: Any = None
    # The chat's project (app/projects): its instructions go first in the system prompt, its
    # collections add to the chat's (or the message's) in retrieval.
    project_instructions: str | None = None
    project_collection_ids: Sequence[uuid.UUID] = ()
    project_tool_ids: Sequence[str] = ()
    # Files named by the request for its new user message; read by the attachments stage.
    file_ids: Sequence[uuid.UUID] = ()
    new_files: PreparedFiles | None = None
    # The message's own collections, replacing the chat's (None: the chat's).
    collection_ids: Sequence[uuid.UUID] | None = None
    # The message's own tools, replacing the chat's (None: the chat's).
    tool_ids: Sequence[str] | None = None
    max_tokens: int | None = None
    # Whether `content` is new text from the user (an edit or a send), which the input checks
    # see; a regenerated message was checked when it was sent.
    new_content: bool = True
    # A mode that reads an image (the image mode) refuses a request without one.
    needs_image: bool = False
    # The request's own sampling options (a /v1 request's), instead of its chat's.
    params: SamplingParams | None = None

    # --- set once the user's message is stored --------------------------------------------
    parent: Message | None = None
    # The conversation the reply answers, oldest first; the last is the user's message being
    # answered (a stateless generation has that one only).
    history: list[ThreadRow] = field(default_factory=list)
    # The id of the saved reply (assistant message or generation), once it exists.
    reply_id: uuid.UUID | None = None

    # --- what the compose stages build ------------------------------------------------------
    # The system prompt, in parts joined by blank lines (a project's instructions come first).
    system_parts: list[str] = field(default_factory=list)
    turns: list[Turn] = field(default_factory=list)
    # Attachments per history entry, as the prompt gets them.
    attachments: dict[uuid.UUID, list[PromptAttachment]] = field(default_factory=dict)
    # Every file attached to the history entries, by entry.
    attached_files: dict[uuid.UUID, list[File]] = field(default_factory=dict)
    tools: list[dict[str, Any]] = field(default_factory=list)
    prompt: Prompt | None = None
    # What a stage notes for its later hooks, under its name.
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def answered(self) -> ThreadRow:
        return self.history[-1]

    def sticky_deployment(self) -> str | None:
        """The deployment of this model that served the thread's last reply: the chat's next
        turn goes there while it is healthy, so the upstream's prompt cache keeps working."""
        for row in reversed(self.history):
            if row.role == "assistant" and row.served_by:
                if row.served_by.get("model") == self.model.name:
                    return row.served_by.get("deployment")
                return None
        return None

    def system_prompt(self) -> tuple[str, list[PromptText]]:
        """The system prompt the reply sends, and the parts of it the user wrote."""
        if "system_prompt" not in self.notes:
            self.notes["system_prompt"] = system_prompt_of(
                mode=self.mode,
                chat_prompt=self.chat_prompt,
                preferred_prompt=self.preferred_prompt,
                mode_params=self.mode_params,
            )
        found: tuple[str, list[PromptText]] = self.notes["system_prompt"]
        return found

    def events_context(self, **ids: uuid.UUID | None) -> EventContext:
        """Where a guardrail event of this reply happened."""
        chat_id = self.chat.id if self.chat is not None else None
        return EventContext(user_id=self.user.id, chat_id=chat_id, **ids)


UpstreamEvents = AsyncGenerator[UpstreamEvent, None]
# An event for the client, sent before the first delta (sources).
EmitEvent = Callable[[ReplyEvent], None]


class Stage:
    """One step of composing a reply; every hook is optional (the defaults do nothing).

    A stage is built once, with the long-lived objects it needs, and added to the composer's
    list (pipeline/composer.py); everything about one reply is in the plan it is given."""

    name: str = "stage"

    async def check(self, plan: ReplyPlan) -> None:
        """Before anything is stored: refuse the request by raising a domain error."""

    async def compose(self, plan: ReplyPlan) -> None:
        """Once the user's message is stored: add to the prompt."""

    def wants_upstream_hook(self, plan: ReplyPlan) -> bool:
        """Whether `before_upstream` has work for this reply (a reply with none skips it)."""
        return False

    async def before_upstream(self, plan: ReplyPlan, call: UpstreamCall, emit: EmitEvent) -> None:
        """In the reply's task, before the upstream call: may change `call`, or `emit` an
        event the client gets before the first delta."""

    def filter(self, plan: ReplyPlan, events: UpstreamEvents) -> UpstreamEvents:
        """Wraps the upstream's events (the output guard); returns `events` to do nothing."""
        return events

    def saved(self, plan: ReplyPlan, result: "ReplyResult") -> None:
        """Once the reply is saved; must not block the reply (start a task instead)."""
