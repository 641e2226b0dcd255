"""Where a reply is streamed: a task that reads the upstream, saves as it goes, and fans out
the reply's events to whoever serves it (SSE, JSON or the WebSocket).

A reply is decoupled from the HTTP request that started it. Its events go into its log
(reply_log.py: numbered from 1, the SSE `id:`), which any number of readers follow, each at its
own place: the request that started it, and clients rejoining after a dropped connection
(resume.py), several at once. With Redis, the log also publishes them for the other workers
(reply_buffer.py).

A stop from another request, or shutdown, ends the reply: its task is cancelled with a reason,
and its last act is to save what came. When its last reader goes away, REPLY_ON_DISCONNECT says
what happens: `cancel` after REPLY_RESUME_GRACE_SECONDS in which nobody rejoined, or `finish`.
"""

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from app.core.errors import AppError
from app.core.logging import current_request_id
from app.core.metrics import Metrics
from app.generation import reply_events
from app.generation.errors import ReplyCrashed, ReplyFailed, ReplyInProgress
from app.generation.prompt import estimate_tokens
from app.generation.reply_events import ReplyEvent
from app.generation.reply_log import ReplyLog
from app.generation.upstream.types import (
    Finish,
    Served,
    StageEvent,
    TextDelta,
    ToolCallDelta,
    UpstreamCall,
    UpstreamEvent,
    Usage,
)

logger = logging.getLogger("parley.generation")


@dataclass
class ReplyResult:
    """How a reply ended, to be saved."""

    status: str  # complete | cancelled | failed
    text: str
    prompt_tokens: int
    completion_tokens: int
    usage_estimated: bool
    time_to_first_token_ms: int | None
    duration_ms: int
    finish_reason: str | None = None
    http_status: int = 200
    error_code: str | None = None
    error_message: str | None = None
    # Which guardrail check stopped the reply (content_blocked), for the error event.
    error_category: str | None = None
    # The model and deployment that answered (routed upstreams), {"model", "deployment"}.
    served_by: dict[str, str] | None = None
    # The chunks retrieval quoted (chat replies with collections; None: no retrieval).
    sources: list[dict[str, Any]] | None = None
    # The tool calls the reply made, in order (chat replies with tools; None: none).
    tool_steps: list[dict[str, Any]] | None = None


class Saver(Protocol):
    """Persists one reply (reply_saver.py); each call is its own short transaction."""

    async def checkpoint(self, text: str) -> None: ...

    async def finish(self, result: ReplyResult) -> dict[str, Any]:
        """Saves the outcome and returns the saved record for the `done` event."""
        ...


@dataclass
class StopReason:
    status: str
    code: str
    message: str


STOPPED = StopReason("cancelled", "stopped", "The reply was stopped.")
CLIENT_GONE = StopReason("cancelled", "client_disconnected", "The client went away.")
SHUTDOWN = StopReason("cancelled", "server_shutdown", "The server is shutting down.")


class ReplyPublisher(Protocol):
    """Where a reply's events are published for other workers (reply_buffer.py). `publish` must
    not wait: it runs in the token loop."""

    def publish(self, reply_id: str, event: ReplyEvent) -> None: ...

    async def viewers_elsewhere(self, reply_id: str) -> bool:
        """Whether a client follows the reply through another worker right now."""
        ...


@dataclass(frozen=True)
class DisconnectPolicy:
    """What a reply does once its last reader is gone (REPLY_ON_DISCONNECT)."""

    action: Literal["cancel", "finish"] = "cancel"
    grace_seconds: float = 0.0  # a rejoin within this keeps a `cancel` reply going


class ReplyHooks(Protocol):
    """What the reply's task runs of the pipeline's stages (pipeline/composer.py)."""

    async def before_upstream(
        self, call: UpstreamCall, emit: Callable[[ReplyEvent], None]
    ) -> None: ...

    def filter(
        self, events: AsyncGenerator[UpstreamEvent, None]
    ) -> AsyncGenerator[UpstreamEvent, None]: ...

    def saved(self, result: ReplyResult) -> None: ...


@dataclass
class ReplyStream:
    """One reply being streamed, under a key (its chat's, or its stateless generation's)."""

    key: str
    # What goes upstream; the hooks may change it in the reply's task before the call.
    call: UpstreamCall
    # The prompt's estimated cost, for upstreams that report no usage.
    prompt_tokens: int
    saver: Saver
    start: ReplyEvent
    checkpoint_seconds: float
    metrics: Metrics | None = None
    # The stages' hooks: before the upstream call (images, retrieval), around its events (the
    # output guard) and after the save (a title). They run in the reply's task, never on the
    # request's database connection.
    hooks: ReplyHooks | None = None
    # Response headers for whoever serves the reply (the remaining quota).
    headers: dict[str, str] = field(default_factory=dict)
    # The saved row's id (the assistant message, or the stateless generation): what a client
    # rejoining the reply names, and the key of its events in the shared buffer.
    reply_id: uuid.UUID | None = None
    owner_id: uuid.UUID | None = None  # the user whose reply it is
    # Set by ActiveReplies.add() from the settings.
    on_disconnect: DisconnectPolicy = field(default_factory=DisconnectPolicy)
    publisher: ReplyPublisher | None = None
    # The reply's numbered events and their readers (reply_log.py).
    log: ReplyLog = field(init=False)
    _orphaned: asyncio.Task[None] | None = None
    _task: asyncio.Task[None] | None = None
    _stop: StopReason | None = None
    _saving: bool = False  # past the stream: a stop now must not interrupt the final save
    # Tool calls waiting for the user's approval (their ids).
    _awaiting_user: set[str] = field(default_factory=set)
    result: ReplyResult | None = None
    saved: dict[str, Any] | None = None
    # Called once the reply is saved (e.g. to title a new chat); must not block for long.
    on_saved: list[Callable[[ReplyResult], None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.log = ReplyLog(on_reader=self._reader_came, on_idle=self._last_reader_left)

    def begin(self) -> None:
        if self._task is None:
            if self.publisher is not None and self.reply_id is not None:
                self.log.publish = functools.partial(self.publisher.publish, str(self.reply_id))
            self._emit(self.start)
            self._task = asyncio.create_task(self._stream(), name=f"reply:{self.key}")
            if self.metrics is not None:
                self.metrics.active_streams.inc()
                self._task.add_done_callback(lambda _t: self._record_metrics())

    def _record_metrics(self) -> None:
        assert self.metrics is not None
        self.metrics.active_streams.dec()
        result = self.result
        if result is None:
            return
        model = self.call.model.name
        if result.time_to_first_token_ms is not None:
            self.metrics.time_to_first_token.labels(model).observe(
                result.time_to_first_token_ms / 1000
            )
        self.metrics.tokens.labels(model, "prompt").inc(result.prompt_tokens)
        self.metrics.tokens.labels(model, "completion").inc(result.completion_tokens)
        if result.status == "failed" and result.error_code:
            self.metrics.upstream_errors.labels(result.error_code).inc()

    @property
    def done(self) -> bool:
        return self.log.finished or (self._task is not None and self._task.done())

    def stop(self, reason: StopReason) -> None:
        """Ends the reply; what came is saved. Safe to call from a cancelled context."""
        if self._task is not None and not self._saving and self._stop is None:
            self._stop = reason
            self._task.cancel()

    def when_done(self, callback: Callable[[], None]) -> None:
        """Calls `callback` once the reply's task has ended (begin() must have been called)."""
        if self._task is not None:
            self._task.add_done_callback(lambda _task: callback())

    async def wait(self) -> None:
        if self._task is not None:
            await asyncio.shield(self._task)

    async def saved_reply(self) -> dict[str, Any]:
        """Waits for the end: the saved reply when it completed or was stopped; ReplyFailed with
        the failure's own status and code otherwise (a JSON answer's error)."""
        await self.wait()
        result, saved = self.result, self.saved
        if result is not None and saved is not None and result.status in ("complete", "cancelled"):
            return saved
        raise ReplyFailed(
            result.error_message if result else None,
            status_code=result.http_status if result and result.http_status >= 400 else 502,
            code=(result.error_code if result else None) or "generation_failed",
            category=result.error_category if result else None,
        )

    @property
    def last_event_id(self) -> int:
        return self.log.last_event_id

    def events(self, after: int = 0) -> AsyncIterator[ReplyEvent]:
        """The reply's events after the one numbered `after` (0: from the start), live until it
        ends. Any number of readers may follow one reply; when the last goes away, the reply
        does what REPLY_ON_DISCONNECT says."""
        self.begin()
        return self.log.read(after)

    def _reader_came(self) -> None:
        if self._orphaned is not None:
            self._orphaned.cancel()
            self._orphaned = None

    def _last_reader_left(self) -> None:
        """The log's last reader left before the reply ended."""
        if self.done or self.on_disconnect.action == "finish" or self._awaiting_user:
            return
        if self.on_disconnect.grace_seconds <= 0:
            self.stop(CLIENT_GONE)
        elif self._orphaned is None:
            self._orphaned = asyncio.get_running_loop().create_task(
                self._stop_unless_rejoined(), name=f"reply-orphaned:{self.key}"
            )

    async def _stop_unless_rejoined(self) -> None:
        """Waits out the grace; the reply stops unless a client rejoined meanwhile, here or (with
        Redis) through another worker. A client following elsewhere that leaves starts a new
        grace."""
        loop = asyncio.get_running_loop()
        grace = self.on_disconnect.grace_seconds
        deadline = loop.time() + grace
        followed_elsewhere = False
        while True:
            await asyncio.sleep(max(0.0, deadline - loop.time()))
            if self.log.readers or self.done:
                return
            if await self._viewers_elsewhere():
                followed_elsewhere = True
                deadline = loop.time() + min(1.0, grace)
            elif followed_elsewhere:
                followed_elsewhere = False
                deadline = loop.time() + grace
            else:
                self._orphaned = None
                self.stop(CLIENT_GONE)
                return

    async def _viewers_elsewhere(self) -> bool:
        if self.publisher is None or self.reply_id is None:
            return False
        try:
            return await self.publisher.viewers_elsewhere(str(self.reply_id))
        except Exception:
            logger.warning("could not look for viewers elsewhere", exc_info=True)
            return False

    async def _checkpoints(self, parts: list[str]) -> None:
        """Saves the text so far every few seconds, apart from the token loop so deltas never
        wait on the database. Each save also marks the row alive (see the stale-stream sweep)."""
        while True:
            await asyncio.sleep(self.checkpoint_seconds)
            try:
                await self.saver.checkpoint("".join(parts))
            except Exception:
                logger.warning("checkpoint failed", exc_info=True, extra={"reply": self.key})

    async def _stream(self) -> None:
        started = time.perf_counter()
        first_token_at: float | None = None
        parts: list[str] = []
        usage: Usage | None = None
        finish: Finish | None = None
        served: Served | None = None
        failure: AppError | None = None
        checkpoints = asyncio.create_task(self._checkpoints(parts))
        try:
            call, hooks = self.call, self.hooks
            if hooks is not None:
                await hooks.before_upstream(call, self._emit)
            events = call.provider.stream(call.model, call.messages, call.params)
            if hooks is not None:
                events = hooks.filter(events)
            emit = self.log.emit
            async with aclosing(events) as s:
                async for event in s:
                    if isinstance(event, TextDelta):
                        if first_token_at is None:
                            first_token_at = time.perf_counter()
                        parts.append(event.text)
                        emit(reply_events.delta(event.text))
                    elif isinstance(event, ToolCallDelta):
                        if first_token_at is None:
                            first_token_at = time.perf_counter()
                        emit(ReplyEvent("tool_call_delta", event.as_json()))
                    elif isinstance(event, Usage):
                        usage = event
                    elif isinstance(event, Finish):
                        finish = event
                    elif isinstance(event, Served):
                        served = event
                    elif isinstance(event, StageEvent):
                        self._stage_event(event)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()
            if self._stop is None:
                self._stop = SHUTDOWN
        except AppError as exc:  # the upstream's errors, or an image that could not be read
            failure = exc
        except Exception:
            logger.exception("the reply failed unexpectedly", extra={"reply": self.key})
            failure = ReplyCrashed()
        finally:
            checkpoints.cancel()
            await asyncio.gather(checkpoints, return_exceptions=True)

        self._saving = True
        text = "".join(parts)
        result = ReplyResult(
            status="complete",
            text=text,
            prompt_tokens=usage.prompt_tokens if usage else self.prompt_tokens,
            completion_tokens=usage.completion_tokens if usage else estimate_tokens(text),
            usage_estimated=usage is None,
            time_to_first_token_ms=(
                round((first_token_at - started) * 1000) if first_token_at is not None else None
            ),
            duration_ms=round((time.perf_counter() - started) * 1000),
            finish_reason=finish.reason if finish else None,
            served_by=served.as_json() if served is not None else None,
            sources=self.call.sources,
            tool_steps=self.call.tool_steps or None,
        )
        if self._stop is not None:
            result.status = self._stop.status
            result.error_code, result.error_message = self._stop.code, self._stop.message
        elif failure is not None:
            result.status = "failed"
            result.http_status = failure.status_code
            result.error_code, result.error_message = failure.code, failure.message
            result.error_category = failure.category
        self.result = result
        self._emit(
            ReplyEvent(
                "usage",
                {
                    "prompt_tokens": result.prompt_tokens,
                    "completion_tokens": result.completion_tokens,
                    "estimated": result.usage_estimated,
                },
            )
        )
        try:
            self.saved = await self.saver.finish(result)
        except Exception:
            logger.exception("could not save the reply", extra={"reply": self.key})
        else:
            if self.hooks is not None:
                self.hooks.saved(result)
            for callback in self.on_saved:
                callback(result)
        user_stopped = self._stop is STOPPED
        if self.saved is not None and (result.status == "complete" or user_stopped):
            self._emit(ReplyEvent("done", self.saved))
        else:
            code = result.error_code or "internal_error"
            message = result.error_message or "The reply could not be saved."
            extra: dict[str, Any] = {}
            if result.error_category:
                extra["category"] = result.error_category
            if "chat_id" in self.start.data:
                extra["chat_id"] = self.start.data["chat_id"]  # the chat stays, with the message
            if (request_id := current_request_id()) is not None:
                extra["request_id"] = request_id  # where the log has the details
            self._emit(reply_events.error(code, message, saved=self.saved, **extra))
        if self._orphaned is not None:
            self._orphaned.cancel()
            self._orphaned = None
        self.log.finish()

    def _emit(self, event: ReplyEvent) -> None:
        """Hands one event of the reply to its log (numbered, read, published)."""
        self.log.emit(event)

    def _stage_event(self, event: StageEvent) -> None:
        """A stage's event (tools). While a call waits for the user's approval the reply does
        not stop for want of readers: the approval's own time limit ends the wait, and a client
        rejoining sees the `approval_required` event again."""
        self.log.emit(ReplyEvent(event.name, event.data))
        call_id = str(event.data.get("id"))
        if event.name == "approval_required":
            self._awaiting_user.add(call_id)
        elif event.name == "tool_result" and call_id in self._awaiting_user:
            self._awaiting_user.discard(call_id)
            if not self._awaiting_user and not self.log.readers:
                self._last_reader_left()


class ActiveReplies:
    """The replies streaming in this process, one per key, so a chat never streams two at once;
    and by reply id, those streaming or ended within `keep_seconds`, for clients rejoining."""

    def __init__(
        self,
        *,
        on_disconnect: DisconnectPolicy | None = None,
        publisher: ReplyPublisher | None = None,
        keep_seconds: float = 0.0,
    ) -> None:
        self._replies: dict[str, ReplyStream] = {}
        self._reserved: set[str] = set()
        self._by_id: dict[uuid.UUID, ReplyStream] = {}
        self.on_disconnect = on_disconnect or DisconnectPolicy()
        self.publisher = publisher
        self.keep_seconds = keep_seconds

    def reserve(self, key: str) -> None:
        """Holds the key while a reply is prepared, so two requests cannot both start one."""
        existing = self._replies.get(key)
        if key in self._reserved or (existing is not None and not existing.done):
            raise ReplyInProgress()
        self._reserved.add(key)

    def release(self, key: str) -> None:
        self._reserved.discard(key)

    def add(self, reply: ReplyStream) -> ReplyStream:
        """Starts a reply under a key reserved by reserve()."""
        self._reserved.discard(reply.key)
        self._replies[reply.key] = reply
        reply.on_disconnect = self.on_disconnect
        reply.publisher = self.publisher
        if reply.reply_id is not None:
            self._by_id[reply.reply_id] = reply
        reply.begin()
        reply.when_done(lambda: self._forget(reply))
        return reply

    def _forget(self, reply: ReplyStream) -> None:
        if self._replies.get(reply.key) is reply:
            del self._replies[reply.key]
        if reply.reply_id is not None:
            # Its events stay a while for clients rejoining (without Redis, the only copy).
            asyncio.get_running_loop().call_later(
                self.keep_seconds, self._by_id.pop, reply.reply_id, None
            )

    def get(self, key: str) -> ReplyStream | None:
        return self._replies.get(key)

    def find(self, reply_id: uuid.UUID) -> ReplyStream | None:
        """The reply saved under `reply_id`, streaming here or ended a short while ago."""
        return self._by_id.get(reply_id)

    def stop(self, key: str, reason: StopReason = STOPPED) -> bool:
        reply = self._replies.get(key)
        if reply is None or reply.done:
            return False
        reply.stop(reason)
        return True

    @property
    def active(self) -> int:
        return sum(not reply.done for reply in self._replies.values())

    def stop_all(self, reason: StopReason) -> int:
        """Stops every reply of this process; safe to call from a signal callback."""
        replies = [reply for reply in self._replies.values() if not reply.done]
        for reply in replies:
            reply.stop(reason)
        return len(replies)

    async def shutdown(self, grace: float = 10.0) -> None:
        """Stops every reply with `server_shutdown` and waits for what came to be saved."""
        replies = list(self._replies.values())
        for reply in replies:
            reply.stop(SHUTDOWN)
        if replies:
            await asyncio.wait(
                [asyncio.create_task(reply.wait()) for reply in replies], timeout=grace
            )
