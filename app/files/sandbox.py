"""Reading documents in worker processes that can be stopped.

Extracting a document's text is CPU work whose cost the uploader controls: a 5 KB PDF whose
pages share one content stream of 100,000 text operators costs most of a second per page, and
no check between pages can stop a single slow page. So extraction runs in worker processes of
its own (EXTRACT_WORKERS per app process, started on first use), each given at most
EXTRACT_MAX_SECONDS per document: past that the process is killed (and replaced on the next
use) and the document fails with `extraction_timeout`. The workers run at a lower priority
(`nice`) than the app, and nothing else waits for them: uploads and images use their own
threads (FileStore.content_limiter).

The parent opens the file and hands the open descriptor to the worker (SCM_RIGHTS), so a file
deleted meanwhile is read whole or found missing here, as with reading it in a thread.
"""

import importlib
import logging
import multiprocessing
import os
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from multiprocessing.reduction import recv_handle, send_handle
from typing import Any, BinaryIO, Literal

import anyio
import anyio.to_thread

logger = logging.getLogger("parley.files")

# Documents read at once per app process (each in its own worker process).
EXTRACT_WORKERS = 2
# How much lower than the app the workers run (nice), so that a heavy document slows the
# server's own loop as little as possible.
_WORKER_NICE = 10

# How long a new worker process may take to start (Python, pypdf), outside any time budget.
_START_SECONDS = 60.0

Kind = Literal["text", "pages"]


@dataclass(frozen=True)
class ExtractJob:
    kind: Kind  # extract_text() for prompts, extract_pages() for the knowledge index
    media_type: str
    name: str
    max_pages: int
    max_chars: int


def _serve(connection: Connection) -> None:
    """A worker process: reads jobs and the descriptor of their file, answers each."""
    with suppress(OSError):
        os.nice(_WORKER_NICE)
    # In the worker only (see extract's _import_note), and before it says it is ready: a
    # document's time budget is for reading it, not for starting Python.
    import pypdf  # noqa: F401

    from app.files import extract

    connection.send(("ready",))

    while True:
        try:
            job: ExtractJob = connection.recv()
            fd = recv_handle(connection)
        except (EOFError, OSError):
            return  # the app closed its end
        reply: tuple[Any, ...]
        try:
            with os.fdopen(fd, "rb") as source:
                run = extract.extract_text if job.kind == "text" else extract.extract_pages
                result = run(
                    source,
                    media_type=job.media_type,
                    name=job.name,
                    max_pages=job.max_pages,
                    max_chars=job.max_chars,
                )
            reply = ("ok", result)
        except Exception as exc:
            from app.core.errors import AppError

            if isinstance(exc, AppError):
                error = type(exc)
                reply = ("app_error", error.__module__, error.__qualname__, exc.message)
            else:
                reply = ("error", f"{type(exc).__name__}: {exc}"[:500])
        connection.send(reply)


class _Worker:
    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")  # nothing of the app's threads inherited
        self.connection, child = context.Pipe(duplex=True)
        self.process: BaseProcess = context.Process(
            target=_serve, args=(child,), name="parley-extract", daemon=True
        )
        self.process.start()
        child.close()
        # Blocks (a worker thread) until the process has imported what it needs.
        if not self.connection.poll(_START_SECONDS) or self.connection.recv() != ("ready",):
            self.kill()
            raise OSError("a document worker process did not start")

    def kill(self) -> None:
        """Stops the process at once, whatever it is doing, and reaps it (a worker thread)."""
        with suppress(Exception):
            self.process.kill()
        self.process.join(5)
        self.connection.close()


class ExtractionPool:
    """Runs extract_text() / extract_pages() in worker processes, each document at most
    `max_seconds`; at most `workers` at once, the others queued in order."""

    def __init__(self, *, workers: int, max_seconds: float) -> None:
        self.max_seconds = max_seconds
        self._limiter = anyio.CapacityLimiter(workers)
        self._idle: list[_Worker] = []
        # Documents being read right now.
        self.busy = 0

    async def run(self, source: BinaryIO, job: ExtractJob) -> Any:
        """The extraction's result; its AppError (encrypted, unreadable, no text, ...) raised
        here; ExtractionTimeout past `max_seconds`."""
        from app.files.errors import DocumentUnreadable, ExtractionTimeout

        async with self._limiter:
            worker = self._idle.pop() if self._idle else await anyio.to_thread.run_sync(_Worker)
            reusable = False
            self.busy += 1
            try:
                try:
                    worker.connection.send(job)
                    send_handle(worker.connection, source.fileno(), worker.process.pid or 0)
                except OSError as exc:  # an idle worker that died meanwhile
                    raise DocumentUnreadable(job.name) from exc
                try:
                    # A thread waits (two at most); cancelled, it is left to end by itself once
                    # the process is killed below.
                    reply = await anyio.to_thread.run_sync(
                        _receive, worker.connection, self.max_seconds, abandon_on_cancel=True
                    )
                except (EOFError, OSError) as exc:
                    # The worker died (the kernel's OOM killer, a crash in a C library).
                    logger.warning("a document's worker process died", exc_info=True)
                    raise DocumentUnreadable(job.name) from exc
                if reply is None:
                    logger.warning(
                        "a document took too long to read",
                        extra={"seconds": self.max_seconds, "media_type": job.media_type},
                    )
                    raise ExtractionTimeout(job.name, self.max_seconds)
                reusable = True
            finally:
                self.busy -= 1
                if reusable:
                    self._idle.append(worker)
                else:
                    with anyio.CancelScope(shield=True):
                        await anyio.to_thread.run_sync(worker.kill)
        return _result(reply, job)

    async def close(self) -> None:
        """Stops the idle workers (those at work are killed by their callers' cancellation)."""
        idle, self._idle = self._idle, []
        for worker in idle:
            await anyio.to_thread.run_sync(worker.kill)


def _receive(connection: Connection, seconds: float) -> tuple[Any, ...] | None:
    """The worker's reply, or None if none began within `seconds`."""
    if not connection.poll(seconds):
        return None
    reply: tuple[Any, ...] = connection.recv()
    return reply


def _result(reply: tuple[Any, ...], job: ExtractJob) -> Any:
    from app.core.errors import AppError
    from app.files.errors import DocumentUnreadable

    status = reply[0]
    if status == "ok":
        return reply[1]
    if status == "app_error":
        _, module, qualname, message = reply
        error_type: Callable[..., Any] = getattr(importlib.import_module(module), qualname)
        if isinstance(error_type, type) and issubclass(error_type, AppError):
            error = error_type.__new__(error_type)
            AppError.__init__(error, message)
            raise error
    logger.warning("reading a document failed: %s", reply[-1])
    raise DocumentUnreadable(job.name)
