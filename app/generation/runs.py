"""A reply being generated: a task that reads the upstream, saves as it goes, and fans out events.

The run is decoupled from the HTTP request that started it. The request only reads the run's
events, so a client going away, a stop from another request, or shutdown all end the run the same
way: the task is cancelled with a reason, and its last act is to save what came.
"""

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Protocol

from app.core.errors import AppError, Conflict
from app.core.metrics import Metrics
from app.generation import events
from app.generation.client import (
    Finish,
    GenerationParams,
    LLMProvider,
    ModelConfig,
    TextDelta,
    UpstreamError,
    Usage,
    estimate_tokens,
)
from app.generation.events import ReplyEvent
from app.generation.prompt import estimate_prompt

logger = logging.getLogger("parley.generation")


class GenerationInProgress(Conflict):
    code = "generation_in_progress"
    message = "A reply is already being generated in this chat; stop it or wait for it to end."


@dataclass
class RunResult:
    """How a run ended, for the recorder to save."""

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


class Recorder(Protocol):
    """Persists one reply; each call is its own short transaction."""

    async def checkpoint(self, text: str) -> None: ...

    async def finish(self, result: RunResult) -> dict[str, Any]:
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


@dataclass
class GenerationRun:
    key: str
    provider: LLMProvider
    model: ModelConfig
    messages: list[dict[str, str]]
    params: GenerationParams
    recorder: Recorder
    start: ReplyEvent
    checkpoint_seconds: float
    metrics: Metrics | None = None
    # Response headers for whoever serves the run (the remaining quota).
    headers: dict[str, str] = field(default_factory=dict)
    _queue: asyncio.Queue[ReplyEvent | None] = field(default_factory=asyncio.Queue)
    _task: asyncio.Task[None] | None = None
    _stop: StopReason | None = None
    _finished: bool = False
    _saving: bool = False  # past the stream: a stop now must not interrupt the final save
    result: RunResult | None = None
    saved: dict[str, Any] | None = None
    # Called once the reply is saved (e.g. to title a new chat); must not block for long.
    on_saved: list[Callable[[RunResult], None]] = field(default_factory=list)

    def begin(self) -> None:
        if self._task is None:
            self._queue.put_nowait(self.start)
            self._task = asyncio.create_task(self._run(), name=f"generation:{self.key}")
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
        """Ends the run; the partial reply is saved. Safe to call from a cancelled context."""
        if self._task is not None and not self._saving and self._stop is None:
            self._stop = reason
            self._task.cancel()

    async def wait(self) -> None:
        if self._task is not None:
            await asyncio.shield(self._task)

    async def events(self) -> AsyncIterator[ReplyEvent]:
        """The run's events until it ends. If the reader goes away first, the run is stopped."""
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
                        event = events.delta("".join(parts))
                yield event
        finally:
            self.stop(CLIENT_GONE)

    async def _checkpoints(self, parts: list[str]) -> None:
        """Saves the text so far every few seconds, apart from the token loop so deltas never
        wait on the database. Each save also marks the row alive (see the stale-stream sweep)."""
        while True:
            await asyncio.sleep(self.checkpoint_seconds)
            try:
                await self.recorder.checkpoint("".join(parts))
            except Exception:
                logger.warning("checkpoint failed", exc_info=True, extra={"run": self.key})

    async def _run(self) -> None:
        started = time.perf_counter()
        first_token_at: float | None = None
        parts: list[str] = []
        usage: Usage | None = None
        finish: Finish | None = None
        failure: AppError | None = None
        checkpoints = asyncio.create_task(self._checkpoints(parts))
        try:
            async with aclosing(self.provider.stream(self.model, self.messages, self.params)) as s:
                async for event in s:
                    if isinstance(event, TextDelta):
                        if first_token_at is None:
                            first_token_at = time.perf_counter()
                        parts.append(event.text)
                        self._queue.put_nowait(events.delta(event.text))
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
        except UpstreamError as exc:
            failure = exc
        except Exception:
            logger.exception("generation failed", extra={"run": self.key})
            failure = AppError("The reply failed unexpectedly.")
            failure.code = "internal_error"
        finally:
            checkpoints.cancel()
            await asyncio.gather(checkpoints, return_exceptions=True)

        self._saving = True
        text = "".join(parts)
        result = RunResult(
            status="complete",
            text=text,
            prompt_tokens=usage.prompt_tokens if usage else estimate_prompt(self.messages),
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
        self._queue.put_nowait(
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
            self.saved = await self.recorder.finish(result)
        except Exception:
            logger.exception("could not save the reply", extra={"run": self.key})
        else:
            for callback in self.on_saved:
                callback(result)
        user_stopped = self._stop is STOPPED
        if self.saved is not None and (result.status == "complete" or user_stopped):
            self._queue.put_nowait(ReplyEvent("done", self.saved))
        else:
            code = result.error_code or "internal_error"
            message = result.error_message or "The reply could not be saved."
            self._queue.put_nowait(events.error(code, message, saved=self.saved))
        self._finished = True
        self._queue.put_nowait(None)


class RunRegistry:
    """The runs of this process, one per key (a chat), so a chat never runs two at once."""

    def __init__(self) -> None:
        self._runs: dict[str, GenerationRun] = {}
        self._reserved: set[str] = set()

    def reserve(self, key: str) -> None:
        """Holds the key while a reply is prepared, so two requests cannot both start one."""
        existing = self._runs.get(key)
        if key in self._reserved or (existing is not None and not existing.done):
            raise GenerationInProgress()
        self._reserved.add(key)

    def release(self, key: str) -> None:
        self._reserved.discard(key)

    def add(self, run: GenerationRun) -> GenerationRun:
        """Starts a run under a key reserved by reserve()."""
        self._reserved.discard(run.key)
        self._runs[run.key] = run
        run.begin()
        task = run._task
        if task is not None:
            task.add_done_callback(lambda _t: self._forget(run))
        return run

    def _forget(self, run: GenerationRun) -> None:
        if self._runs.get(run.key) is run:
            del self._runs[run.key]

    def get(self, key: str) -> GenerationRun | None:
        return self._runs.get(key)

    def stop(self, key: str, reason: StopReason = STOPPED) -> bool:
        run = self._runs.get(key)
        if run is None or run.done:
            return False
        run.stop(reason)
        return True

    @property
    def active(self) -> int:
        return sum(not run.done for run in self._runs.values())

    def stop_all(self, reason: StopReason) -> int:
        """Stops every run of this process; safe to call from a signal callback."""
        runs = [run for run in self._runs.values() if not run.done]
        for run in runs:
            run.stop(reason)
        return len(runs)

    async def shutdown(self, grace: float = 10.0) -> None:
        """Stops every run with `server_shutdown` and waits for their partial replies to save."""
        runs = list(self._runs.values())
        for run in runs:
            run.stop(SHUTDOWN)
        if runs:
            await asyncio.wait([asyncio.create_task(run.wait()) for run in runs], timeout=grace)
