"""Parley as real server processes (uvicorn), for tests of signals and several workers."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.live import free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ServerProcess:
    process: subprocess.Popen[bytes]
    base_url: str

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout=timeout)


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
        }
    )
    env.update({key.upper(): str(value) for key, value in settings.items()})
    return env


def start_server(settings: dict[str, Any], *, timeout: float = 20.0) -> ServerProcess:
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
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                return ServerProcess(process, base_url)
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("the server did not start")


@contextmanager
def server(settings: dict[str, Any]) -> Iterator[ServerProcess]:
    running = start_server(settings)
    try:
        yield running
    finally:
        if running.process.poll() is None:
            running.signal(signal.SIGKILL)
            running.process.wait(timeout=10)
