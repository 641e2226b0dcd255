"""Where a reply is streamed: a task that reads the upstream, saves as it goes, and fans out
the reply's events to whoever serves it (SSE, JSON or the WebSocket).

A reply is decoupled from the HTTP request that started it. The request only reads the reply's
events, so a client going away, a stop from another request, or shutdown all end the reply the
same way: its task is cancelled with a reason, and its last act is to save what came.
"""

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Protocol

from app.core.errors import AppError
from app.core.metrics import Metrics
from app.generation import reply_events
from app.generation.errors import ReplyCrashed, ReplyFailed, ReplyInProgress
from app.generation.prompt import ImageInput, Prompt, estimate_tokens
from app.generation.reply_events import ReplyEvent
from app.generation.upstream.types import (
    ChatMessage,
    Finish,
    ModelConfig,
    Provider,
    SamplingParams,
    TextDelta,
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


# Loads the data URLs of a prompt's images (app/files/attachments.py), by file id.
ImageLoader = Callable[[Sequence[ImageInput]], Awaitable[dict[uuid.UUID, str]]]
# Completes the prompt just before the upstream is called (retrieval: app/generation/retrieval.py)
# and returns it with an event to send first (`sources`), or None.
PromptHook = Callable[[list[ChatMessage]], Awaitable[tuple[list[ChatMessage], ReplyEvent | None]]]


@dataclass
class ReplyStream:
    """One reply being streamed, under a key (its chat's, or its stateless generation's)."""

    key: str
    provider: Provider
    model: ModelConfig
    prompt: Prompt
    params: SamplingParams
    saver: Saver
    start: ReplyEvent
    checkpoint_seconds: float
    metrics: Metrics | None = None
    # Reads the images the prompt sends, once the request's transaction has ended: decoding
    # them may take a while, and no database connection is held for it.
    load_images: ImageLoader | None = None
    # Runs in the reply's task, before the upstream call: network calls and its own short
    # transactions, never the request's connection.
    prepare: PromptHook | None = None
    # Response headers for whoever serves the reply (the remaining quota).
    headers: dict[str, str] = field(default_factory=dict)
    _queue: asyncio.Queue[ReplyEvent | None] = field(default_factory=asyncio.Queue)
    _task: asyncio.Task[None] | None = None
    _stop: StopReason | None = None
    _finished: bool = False
    _saving: bool = False  # past the stream: a stop now must not interrupt the final save
    result: ReplyResult | None = None
    saved: dict[str, Any] | None = None
    # Called once the reply is saved (e.g. to title a new chat); must not block for long.
    on_saved: list[Callable[[ReplyResult], None]] = field(default_factory=list)

    def begin(self) -> None:
        if self._task is None:
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
        model = self.model.name
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
        return self._finished or (self._task is not None and self._task.done())

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
        )

    async def events(self) -> AsyncIterator[ReplyEvent]:
        """The reply's events until it ends. If the reader goes away first, it is stopped."""
        self.begin()
        backlog: deque[ReplyEvent | None] = deque()
        try:
            while True:
                event = backlog.popleft() if backlog else await self._queue.get()
                if event is None:
                    return
                if event.name == "delta":
                    # A reader that fell behind gets the waiting text as one delta: one write
                    # instead of many, which is what lets a busy server catch up.
                    parts = [event.data["content"]]
                    while not self._queue.empty():
                        waiting = self._queue.get_nowait()
                        if waiting is None or waiting.name != "delta":
                            backlog.append(waiting)
                            break
                        parts.append(waiting.data["content"])
                    if len(parts) > 1:
                        event = reply_events.delta("".join(parts))
                yield event
        finally:
            self.stop(CLIENT_GONE)

    async def _messages(self) -> list[ChatMessage]:
        """The prompt as sent: with its images' data, read now, once, before the upstream is
        called."""
        if not self.prompt.images:
            return self.prompt.messages
        if self.load_images is None:
            raise ReplyCrashed("The reply has images but no way to load them.")
        load, self.load_images = self.load_images, None  # what it holds is not needed again
        return self.prompt.render(await load(self.prompt.images))

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
        failure: AppError | None = None
        checkpoints = asyncio.create_task(self._checkpoints(parts))
        try:
            messages = await self._messages()
            if self.prepare is not None:
                messages, first = await self.prepare(messages)
                if first is not None:
                    self._emit(first)
            async with aclosing(self.provider.stream(self.model, messages, self.params)) as s:
                async for event in s:
                    if isinstance(event, TextDelta):
                        if first_token_at is None:
                            first_token_at = time.perf_counter()
                        parts.append(event.text)
                        self._emit(reply_events.delta(event.text))
                    elif isinstance(event, Usage):
                        usage = event
                    elif isinstance(event, Finish):
                        finish = event
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
            prompt_tokens=usage.prompt_tokens if usage else self.prompt.tokens,
            completion_tokens=usage.completion_tokens if usage else estimate_tokens(text),
            usage_estimated=usage is None,
            time_to_first_token_ms=(
                round((first_token_at - started) * 1000) if first_token_at is not None else None
            ),
            duration_ms=round((time.perf_counter() - started) * 1000),
            finish_reason=finish.reason if finish else None,
        )
        if self._stop is not None:
            result.status = self._stop.status
            result.error_code, result.error_message = self._stop.code, self._stop.message
        elif failure is not None:
            result.status = "failed"
            result.http_status = failure.status_code
            result.error_code, result.error_message = failure.code, failure.message
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
            for callback in self.on_saved:
                callback(result)
        user_stopped = self._stop is STOPPED
        if self.saved is not None and (result.status == "complete" or user_stopped):
            self._emit(ReplyEvent("done", self.saved))
        else:
            code = result.error_code or "internal_error"
            message = result.error_message or "The reply could not be saved."
            self._emit(reply_events.error(code, message, saved=self.saved))
        self._finished = True
        self._queue.put_nowait(None)  # the end, for the reader

    def _emit(self, event: ReplyEvent) -> None:
        """Hands one event of the reply to whoever reads it."""
        self._queue.put_nowait(event)


class ActiveReplies:
    """The replies streaming in this process, one per key, so a chat never streams two at once."""

    def __init__(self) -> None:
        self._replies: dict[str, ReplyStream] = {}
        self._reserved: set[str] = set()

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
        reply.begin()
        reply.when_done(lambda: self._forget(reply))
        return reply

    def _forget(self, reply: ReplyStream) -> None:
        if self._replies.get(reply.key) is reply:
            del self._replies[reply.key]

    def get(self, key: str) -> ReplyStream | None:
        return self._replies.get(key)

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
