"""Work a request schedules and answers without waiting for, drained when the app shuts down."""

import asyncio
import logging
from collections.abc import Awaitable, Callable

logger = logging.getLogger("parley.jobs")


class BackgroundJobs:
    """Runs coroutines after the response, keeps them alive, and logs their failures.

    Used where the answer must not depend on what the work finds: forgot-password answers the
    same way, in the same time, whether or not the email has an account, because the lookup
    happens here, after the response is on its way.
    """

    def __init__(self) -> None:
        # The event loop keeps only weak references to tasks: without this set a pending job
        # could be garbage-collected mid-flight.
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, name: str, job: Callable[[], Awaitable[None]]) -> None:
        task = asyncio.create_task(self._run(name, job), name=f"parley-job-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, timeout: float = 10) -> None:  # noqa: ASYNC109
        """Wait for pending jobs; those still running after `timeout` seconds are cancelled."""
        while self._tasks:
            pending = set(self._tasks)
            _done, late = await asyncio.wait(pending, timeout=timeout)
            for task in late:
                task.cancel()
            if late:
                await asyncio.gather(*late, return_exceptions=True)
                return

    @property
    def pending(self) -> int:
        return len(self._tasks)

    @staticmethod
    async def _run(name: str, job: Callable[[], Awaitable[None]]) -> None:
        try:
            await job()
        except asyncio.CancelledError:
            logger.error("background job %s cancelled before it finished", name)
            raise
        except Exception:
            logger.exception("background job %s failed", name, extra={"job": name})
