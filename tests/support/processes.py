"""Parley as real server processes (uvicorn), for tests of signals and several workers."""

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.live import free_port
from tests.support.settings import RATE_LIMIT_SETTINGS
from tests.support.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    base_url: str

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    async def wait(self, timeout: float) -> int:
        """The exit code, once the process has exited (waited for in a thread)."""
        return await asyncio.to_thread(self.process.wait, timeout)


def _environment(settings: dict[str, Any]) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.isupper()
        or key in ("PATH", "HOME", "LANG", "LC_ALL", "PYTHONPATH", "TMPDIR", "CI")
    }
    env.update(
        {
            "ENVIRONMENT": "test",
            "SECRET_KEY": "test-secret-key-that-is-long-enough-0123456789",
            "BCRYPT_ROUNDS": "4",
            "LOG_LEVEL": "WARNING",
            "AUTO_TITLE": "false",
            # As in-process test apps: no test here is about rate limits, and with a shared
            # Redis every test run on the machine (all from 127.0.0.1) would count together.
            **{name.upper(): value for name, value in RATE_LIMIT_SETTINGS.items()},
        }
    )
    env.update({key.upper(): str(value) for key, value in settings.items()})
    return env


async def start_server(settings: dict[str, Any], *, timeout: float = 20.0) -> ServerProcess:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "app.main:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--timeout-graceful-shutdown",
            "10",
        ],
        cwd=ROOT,
        env=_environment(settings),
        stdout=subprocess.DEVNULL,
    )
    running = ServerProcess(process, f"http://127.0.0.1:{port}")

    async def healthy_or_exited() -> bool:
        if process.poll() is not None:
            return True
        try:
            async with httpx.AsyncClient(base_url=running.base_url, timeout=1) as http:
                return (await http.get("/health")).status_code == 200
        except httpx.TransportError:
            return False

    try:
        await wait_until(healthy_or_exited, timeout=timeout, interval=0.1)
    except AssertionError:
        process.kill()
        raise RuntimeError("the server did not start") from None
    if process.returncode is not None:
        raise RuntimeError(f"the server exited with {process.returncode}")
    return running


@asynccontextmanager
async def server(settings: dict[str, Any]) -> AsyncIterator[ServerProcess]:
    running = await start_server(settings)
    try:
        yield running
    finally:
        if running.process.poll() is None:
            running.signal(signal.SIGKILL)
            await asyncio.to_thread(running.process.wait, 10)
