"""The supervisor of the app's long-lived loops: a crashed loop comes back, close() ends all."""

import asyncio

import pytest

from app.core.background import Supervisor


async def test_a_crashed_loop_is_logged_and_started_again(caplog):
    runs = 0
    resumed = asyncio.Event()

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs < 3:
            raise RuntimeError("lost the connection")
        resumed.set()
        await asyncio.Event().wait()

    supervisor = Supervisor(first_backoff=0.01)
    supervisor.start("flaky", flaky)
    await asyncio.wait_for(resumed.wait(), timeout=5)
    assert supervisor.restarts["flaky"] == 2
    assert supervisor.running == ["flaky"]
    assert caplog.text.count("loop flaky crashed") == 2
    await supervisor.close()
    assert supervisor.running == []


async def test_close_waits_for_each_loop_to_end():
    cleaned = asyncio.Event()

    async def loop() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0.01)  # its own shutdown work
            cleaned.set()

    supervisor = Supervisor()
    supervisor.start("worker", loop)
    await asyncio.sleep(0)
    await supervisor.close()
    assert cleaned.is_set()


async def test_a_periodic_job_that_fails_runs_again_on_time(caplog):
    calls = 0

    async def job() -> None:
        nonlocal calls
        calls += 1
        raise ValueError("the database was busy")

    supervisor = Supervisor()
    supervisor.every("purge", 0.01, job)
    async with asyncio.timeout(5):
        while calls < 3:
            await asyncio.sleep(0.01)
    await supervisor.close()
    assert supervisor.restarts == {}  # the loop itself never crashed
    assert "purge failed" in caplog.text


async def test_two_loops_cannot_share_a_name():
    supervisor = Supervisor()
    supervisor.start("one", lambda: asyncio.Event().wait())
    with pytest.raises(ValueError):
        supervisor.start("one", lambda: asyncio.Event().wait())
    await supervisor.close()
