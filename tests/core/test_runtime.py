"""The app's one runtime (app/runtime.py): the loops it runs under its supervisor, with and
without Redis, the one Redis client every Redis user shares, and a crashed loop restarted."""

import asyncio

from app.core.background import Supervisor
from tests.ops.test_processes import redis_url  # noqa: F401 - the fixture
from tests.support.app import runtime_of, serving
from tests.support.settings import make_settings
from tests.support.wait import wait_until


def expected_loops(workers: int) -> set[str]:
    return {
        "file-sweep",
        "stale-reply-sweep",
        "trash-purge",
        "audit-purge",
        "audit-writer",
        "ingest-sweep",
        *(f"ingest-worker-{n}" for n in range(workers)),
    }


class TestLoops:
    async def test_without_redis_the_loops_run_under_the_supervisor(self, database, clean_db):
        settings = make_settings(database, ingest_workers=2)
        async with serving(settings) as (app, http):
            runtime = runtime_of(app)
            assert set(runtime.supervisor.running) == expected_loops(2)
            assert runtime.redis is None
            assert (await http.get("/health")).status_code == 200
        # Shutdown waited for every loop to end.
        assert runtime.supervisor.running == []

    async def test_with_redis_the_listeners_join_them_on_one_client(
        self,
        database,
        clean_db,
        redis_url,  # noqa: F811
    ):
        settings = make_settings(database, ingest_workers=1, redis_url=redis_url)
        async with serving(settings) as (app, _http):
            runtime = runtime_of(app)
            assert set(runtime.supervisor.running) == expected_loops(1) | {
                "reply-buffer-flush",
                "stop-signals",
                "invalidations",
                "routing-sync",
            }
            generation = runtime.generation
            assert generation is not None and generation.buffer is not None
            # Every Redis user speaks through the runtime's one client and its pool.
            shared = runtime.redis
            assert shared is not None and await shared.ping()
            assert generation.buffer.client is shared
            assert getattr(generation.stops, "client", None) is shared
            assert runtime.invalidations.client is shared
            assert generation.router.shared is not None
            assert getattr(generation.router.shared, "client", None) is shared
        assert runtime.supervisor.running == []


class TestCrashes:
    async def test_a_crashing_loop_of_the_running_app_is_restarted(self, database, clean_db):
        settings = make_settings(database)
        async with serving(settings) as (app, _http):
            supervisor: Supervisor = runtime_of(app).supervisor
            supervisor.first_backoff = 0.01
            runs = 0
            ended = asyncio.Event()

            async def flaky() -> None:
                nonlocal runs
                runs += 1
                if runs == 1:
                    raise RuntimeError("lost its connection")
                try:
                    await asyncio.Event().wait()
                finally:
                    ended.set()

            supervisor.start("flaky", flaky)
            await wait_until(lambda: runs == 2)
            assert supervisor.restarts["flaky"] == 1
            assert "flaky" in supervisor.running
        # Shutdown cancelled the restarted loop and waited for it.
        assert ended.is_set()
