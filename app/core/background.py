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


# A crashed loop waits this long before it runs again, doubling up to the cap; a loop that ran
# for RESET_AFTER seconds before crashing starts again from the first delay.
FIRST_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 60.0
RESET_AFTER_SECONDS = 60.0


class Supervisor:
    """The app's long-lived loops (sweeps, purges, the Redis listeners, the ingestion workers),
    run as one group: a loop that crashes is logged and started again after a backoff; close()
    cancels every loop and waits for each to end."""

    def __init__(self, *, first_backoff: float = FIRST_BACKOFF_SECONDS) -> None:
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.first_backoff = first_backoff
        self.restarts: dict[str, int] = {}

    def start(self, name: str, loop: Callable[[], Awaitable[object]]) -> None:
        """Runs `loop()` until close(); when it raises (or returns), it runs again."""
        if name in self._tasks:
            raise ValueError(f"a loop named {name!r} runs already")
        self._tasks[name] = asyncio.create_task(self._keep(name, loop), name=f"parley-{name}")

    def every(self, name: str, seconds: float, job: Callable[[], Awaitable[object]]) -> None:
        """Runs `job()` every `seconds` (the first time after `seconds`); a failed run is logged
        and the next one comes on time."""

        async def loop() -> None:
            while True:
                await asyncio.sleep(seconds)
                try:
                    await job()
                except Exception:
                    logger.warning("%s failed", name, exc_info=True, extra={"loop": name})

        self.start(name, loop)

    async def _keep(self, name: str, loop: Callable[[], Awaitable[object]]) -> None:
        backoff = self.first_backoff
        while True:
            started = asyncio.get_running_loop().time()
            try:
                await loop()
                logger.error("loop %s returned; starting it again", name, extra={"loop": name})
            except Exception:
                logger.exception("loop %s crashed; starting it again", name, extra={"loop": name})
            if asyncio.get_running_loop().time() - started >= RESET_AFTER_SECONDS:
                backoff = self.first_backoff
            self.restarts[name] = self.restarts.get(name, 0) + 1
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    async def stop(self, *names: str) -> None:
        """Cancels the named loops and waits until each has ended (a part shutting down stops
        its own loops before it closes what they use)."""
        tasks = [task for name in names if (task := self._tasks.pop(name, None)) is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    @property
    def running(self) -> list[str]:
        return [name for name, task in self._tasks.items() if not task.done()]

    async def close(self) -> None:
        """Cancels every loop and waits until each has ended."""
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
