"""Tools in a chat reply: the tool-call loop (docs/tools.md).

A chat's tools (its `tool_ids`, or a message's) are offered to the model. When it answers with
tool calls instead of (or after) text, the calls are run, several at once when it asks for
several, each within its time; their results go back to the model as `role: tool` messages, and
it is called again, until it answers in text or TOOL_MAX_STEPS steps have called tools (the
reply then ends with `tool_steps_exceeded`, keeping what was said).

The client follows along: `tool_call` once a call's arguments are complete, `approval_required`
when it waits for the user (POST .../tool-approvals answers it; TOOL_APPROVAL_TIMEOUT_SECONDS
refuses it), `tool_result` when it ends. Every failure is a result the model reads. Results are
untrusted text: through the guardrails' checks (personal data, injected instructions) and quoted
as data. The quota is checked before each further step, and each model call's usage counts.
The calls are saved with the reply (`tool_steps`) and sent back on the chat's next turn in
OpenAI's shape (app/generation/prompt.py)."""

import asyncio
import itertools
import logging
import uuid
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from app.core.config import Settings
from app.core.db import Database
from app.core.uow import unit_of_work
from app.generation.errors import ToolStepsExceeded
from app.generation.pipeline.stage import EmitEvent, ReplyPlan, Stage, UpstreamEvents
from app.generation.prompt import tool_step_messages
from app.generation.tool_approvals import PendingApprovals
from app.generation.upstream.types import (
    Finish,
    StageEvent,
    TextDelta,
    ToolCallDelta,
    UpstreamCall,
    UpstreamEvent,
    Usage,
)
from app.groups.access import GroupCache
from app.guardrails.pipeline import GuardrailPipeline, UntrustedText
from app.tools.catalog import Tool, ToolCatalog
from app.tools.runner import ToolContext, ToolResult, ToolRunner
from app.usage.repository import UsageRepository
from app.usage.service import QuotaExceeded, UsageService
from app.users.models import User
from app.users.repository import UserRepository

logger = logging.getLogger("parley.tools")

WITHHELD = "[The result is withheld: it holds personal data this server does not send.]"


class StepQuota(Protocol):
    """Whether the user's quota allows another model call, `spent` tokens into the reply."""

    async def allows(self, user: User, spent: int) -> bool: ...


class UsageStepQuota:
    """The daily token quota (app/usage), read in a short transaction of its own, with the
    user's quota as it is now (an admin may have changed it while the reply ran): what the user
    used today (this reply's reservation included) must leave more than the reply has spent."""

    def __init__(self, db: Database, settings: Settings, groups: GroupCache | None = None) -> None:
        """`groups`: the runtime's groups cache, whose quotas apply too (the tighter holds)."""
        self.db = db
        self.settings = settings
        self.groups = groups

    async def allows(self, user: User, spent: int) -> bool:
        async with unit_of_work(self.db) as uow:
            current = await uow.get(UserRepository).get(user.id)
            if current is None:
                return False
            usage = UsageService(
                usage=uow.get(UsageRepository),
                settings=self.settings,
                groups=self.groups.access(uow) if self.groups is not None else None,
            )
            if await usage.limit_for(current) is None:
                return True
            quota = await usage.quota(current)
        return quota.remaining is None or quota.remaining > spent


@dataclass(frozen=True)
class RequestedCall:
    id: str
    name: str
    arguments: str


@dataclass
class _ToolsNote:
    """What the stage keeps for one reply (plan.notes["tools"])."""

    tools: dict[str, Tool]  # by the name the model sees
    collection_ids: list[uuid.UUID]
    call: UpstreamCall | None = None


@dataclass
class _Spent:
    prompt: int = 0
    completion: int = 0
    reported: bool = False

    def add(self, usage: Usage) -> None:
        self.prompt += usage.prompt_tokens
        self.completion += usage.completion_tokens
        self.reported = True


@dataclass
class _Calls:
    """A model's tool calls, gathered from the stream's pieces."""

    pieces: dict[int, dict[str, Any]] = field(default_factory=dict)

    def add(self, delta: ToolCallDelta) -> None:
        entry = self.pieces.setdefault(delta.index, {"id": None, "name": "", "arguments": []})
        if delta.id:
            entry["id"] = delta.id
        if delta.name:
            entry["name"] += delta.name
        entry["arguments"].append(delta.arguments)

    def complete(self, step: int) -> list[RequestedCall]:
        return [
            RequestedCall(
                id=entry["id"] or f"call_{step}_{index}",
                name=entry["name"],
                arguments="".join(entry["arguments"]),
            )
            for index, entry in sorted(self.pieces.items())
        ]


class Tools(Stage):
    name = "tools"

    def __init__(
        self,
        *,
        catalog: ToolCatalog,
        runner: ToolRunner,
        approvals: PendingApprovals,
        settings: Settings,
        guardrails: GuardrailPipeline,
        quota: StepQuota,
    ) -> None:
        self.catalog = catalog
        self.runner = runner
        self.approvals = approvals
        self.settings = settings
        self.guardrails = guardrails
        self.quota = quota

    async def compose(self, plan: ReplyPlan) -> None:
        if plan.chat is None:  # /v1 and /api/generate: the client's own tools pass through
            return
        tool_ids = plan.tool_ids if plan.tool_ids is not None else plan.chat.tool_ids
        # A project's tools add to its chats' (as its collections do).
        tools = self.catalog.offered([*(tool_ids or []), *plan.project_tool_ids])
        if not tools:
            return
        collection_ids = plan.collection_ids
        if collection_ids is None:
            collection_ids = [uuid.UUID(value) for value in plan.chat.collection_ids or []]
        plan.notes[self.name] = _ToolsNote(
            {tool.model_name: tool for tool in tools}, list(collection_ids)
        )
        plan.tools = [tool.spec() for tool in tools]

    def wants_upstream_hook(self, plan: ReplyPlan) -> bool:
        return self.name in plan.notes

    async def before_upstream(self, plan: ReplyPlan, call: UpstreamCall, emit: EmitEvent) -> None:
        note: _ToolsNote = plan.notes[self.name]
        call.params = replace(call.params, extra={**call.params.extra, "tools": plan.tools})
        note.call = call

    def filter(self, plan: ReplyPlan, events: UpstreamEvents) -> UpstreamEvents:
        note: _ToolsNote | None = plan.notes.get(self.name)
        if note is None or note.call is None:
            return events
        return self._loop(plan, note, note.call, events)

    async def _loop(
        self, plan: ReplyPlan, note: _ToolsNote, call: UpstreamCall, events: UpstreamEvents
    ) -> AsyncGenerator[UpstreamEvent, None]:
        messages = list(call.messages)
        spent = _Spent()
        for step in itertools.count():
            text: list[str] = []
            calls = _Calls()
            finish: Finish | None = None
            async with aclosing(events) as stream:
                async for event in stream:
                    if isinstance(event, ToolCallDelta):
                        calls.add(event)
                    elif isinstance(event, Usage):
                        spent.add(event)
                    elif isinstance(event, Finish):
                        finish = event
                    else:
                        if isinstance(event, TextDelta):
                            text.append(event.text)
                        yield event
            if spent.reported:
                yield Usage(spent.prompt, spent.completion)
            if not calls.pieces:
                if finish is not None:
                    yield finish
                return
            if step >= self.settings.tool_max_steps:
                raise ToolStepsExceeded()
            requested = calls.complete(step)
            records = [self._record(note, step, c) for c in requested]
            call.tool_steps.extend(records)
            for record in records:
                yield StageEvent(
                    "tool_call",
                    {"id": record["id"], "name": record["name"], "arguments": record["arguments"]},
                )
            async for event in self._run(plan, note, call, requested, records):
                yield event
            messages.extend(tool_step_messages(records, "".join(text)))
            if not await self.quota.allows(plan.user, spent.prompt + spent.completion):
                raise QuotaExceeded()
            events = call.provider.stream(call.model, messages, call.params)

    def _record(self, note: _ToolsNote, step: int, requested: RequestedCall) -> dict[str, Any]:
        tool = note.tools.get(requested.name)
        return {
            "step": step,
            "id": requested.id,
            "name": requested.name,
            "tool_id": tool.id if tool is not None else None,
            "arguments": requested.arguments,
            "result": None,  # stays None for a call the reply's stop cut short
            "is_error": False,
            "duration_ms": None,
            "approval": "required" if tool is not None and tool.needs_approval else "not_needed",
        }

    async def _run(
        self,
        plan: ReplyPlan,
        note: _ToolsNote,
        call: UpstreamCall,
        requested: Sequence[RequestedCall],
        records: Sequence[dict[str, Any]],
    ) -> AsyncGenerator[UpstreamEvent, None]:
        """Runs a step's calls at once; their events as they happen (a stop cancels them)."""
        queue: asyncio.Queue[StageEvent] = asyncio.Queue()
        context = ToolContext(plan.user.id, note.collection_ids)
        tasks = [
            asyncio.create_task(self._one(plan, note, call, r, record, context, queue.put_nowait))
            for r, record in zip(requested, records, strict=True)
        ]
        try:
            ended = 0
            while ended < len(tasks):
                event = await queue.get()
                ended += event.name == "tool_result"
                yield event
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _one(
        self,
        plan: ReplyPlan,
        note: _ToolsNote,
        call: UpstreamCall,
        requested: RequestedCall,
        record: dict[str, Any],
        context: ToolContext,
        send: Callable[[StageEvent], None],
    ) -> None:
        tool = note.tools.get(requested.name)
        try:
            if record["approval"] == "required":
                assert plan.reply_id is not None
                shown = {"id": requested.id, "name": requested.name}
                send(StageEvent("approval_required", shown | {"arguments": requested.arguments}))
                verdict = await self.approvals.wait(
                    plan.reply_id, requested.id, self.settings.tool_approval_timeout_seconds
                )
                record["approval"] = verdict
                if verdict != "approved":
                    why = "denied" if verdict == "denied" else "did not answer in time for"
                    result = ToolResult(f"The user {why} this call; it was not run.", True, 0)
                else:
                    result = await self.runner.run(
                        tool, requested.name, requested.arguments, context
                    )
            else:
                result = await self.runner.run(tool, requested.name, requested.arguments, context)
            content, flagged = await self._checked(plan, requested.name, result)
        except Exception:
            logger.exception("a tool call failed inside Parley", extra={"tool": requested.name})
            result = ToolResult("The call failed inside the server.", True, 0)
            content, flagged = result.content, False
        record.update(
            result=content,
            is_error=result.is_error,
            duration_ms=result.duration_ms,
            flagged=flagged,
        )
        data: dict[str, Any] = {
            "id": requested.id,
            "name": requested.name,
            "content": content,
            "is_error": result.is_error,
            "duration_ms": result.duration_ms,
        }
        if result.sources:
            data["sources"] = result.sources
            call.sources = [*(call.sources or []), *result.sources]
        send(StageEvent("tool_result", data))

    async def _checked(self, plan: ReplyPlan, name: str, result: ToolResult) -> tuple[str, bool]:
        """The result as the model may read it, and whether it carries instructions."""
        if not result.content:
            return result.content, False
        (checked,) = await self.guardrails.check_untrusted(
            [UntrustedText(result.content, "tool", name)],
            mode=plan.mode,
            context=plan.events_context(message_id=plan.reply_id),
            on_block="drop",
        )
        if checked.dropped:
            return WITHHELD, False
        return checked.text, checked.flagged
