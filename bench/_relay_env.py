"""bench/relay.py's set-up and tear-down: the fake upstream and Parley in processes of their own
on a fresh database, the settings raised out of reach, CPU accounting, py-spy, the client pools.
"""

import argparse
import asyncio
import contextlib
import importlib
import json
import math
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from _common import MODEL, ROOT, log
from _processes import (
    Child,
    TreeSampler,
    free_port,
    machine_busy_seconds,
    tree_pids,
    wait_for_http,
)

CLIENT_SHARD = 25


QUIET_CORES = 0.25  # --quiet-wait: what "the rest of the machine is quiet" means


POSTGRES_ADMIN_DSN = os.environ.get(
    "BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)


# "10/minute", "5 per 15 minutes", "10/minute;100/hour": the limits syntax slowapi settings use.
LIMIT_SYNTAX = re.compile(r"^\s*\d+\s*(/|per\b)", re.IGNORECASE)


@dataclass
class CpuUse:
    """CPU seconds used during one phase, by whom. `others` is everything else on the machine:
    on a shared machine it competes with Parley and inflates every time measured."""

    wall: float = 0.0
    parley: float = 0.0
    upstream: float = 0.0
    client: float = 0.0
    machine: float = 0.0

    @property
    def others(self) -> float:
        return max(0.0, self.machine - self.parley - self.upstream - self.client)


async def wait_for_quiet(env: "Environment") -> None:
    """With --quiet-wait S: wait (at most S seconds) until the rest of the machine has used less
    than QUIET_CORES for two seconds, so other people's jobs do not skew the next phase."""
    deadline = time.monotonic() + env.args.quiet_wait
    quiet_for = 0
    while time.monotonic() < deadline:
        with cpu_use(env) as use:
            await asyncio.sleep(1.0)
        quiet_for = quiet_for + 1 if use.others / use.wall < QUIET_CORES else 0
        if quiet_for >= 2:
            return
    if env.args.quiet_wait > 0:
        log(f"the machine is still busy after {env.args.quiet_wait:g} s; measuring anyway")


@contextlib.contextmanager
def cpu_use(env: "Environment") -> Iterator[CpuUse]:
    def snapshot() -> CpuUse:
        return CpuUse(
            wall=time.perf_counter(),
            parley=env.parley.cpu_seconds(),
            upstream=env.upstream.cpu_seconds(),
            client=time.process_time(),
            machine=machine_busy_seconds(),
        )

    use = CpuUse()
    before = snapshot()
    try:
        yield use
    finally:
        after = snapshot()
        for name in ("wall", "parley", "upstream", "client", "machine"):
            setattr(use, name, getattr(after, name) - getattr(before, name))


@dataclass
class Environment:
    """What the measurements run against."""

    args: argparse.Namespace
    parley_url: str
    upstream_url: str
    parley: TreeSampler
    upstream: TreeSampler
    overrides: dict[str, str]
    notes: list[str]
    profiler: "Profiler"
    idle_rss: int = 0
    load_average: float = field(default_factory=lambda: os.getloadavg()[0])
    # --resume with Redis: a second Parley on the same database and Redis, where replies
    # streaming on the first are rejoined (through the Redis streams).
    other_url: str | None = None


class Profiler:
    """With --py-spy DIR: py-spy samples Parley (every worker) during each measured phase and
    writes collapsed stacks to DIR/<phase>.txt; bench/_profile_top.py summarises them."""

    def __init__(self, directory: str | None, parley_pid: int, workdir: Path) -> None:
        self.directory = Path(directory).resolve() if directory else None
        self.parley_pid = parley_pid
        self.workdir = workdir
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
        executable = Path(sys.executable).with_name("py-spy")
        self.executable = str(executable) if executable.exists() else shutil.which("py-spy")
        if self.directory is not None and self.executable is None:
            raise SystemExit("--py-spy needs py-spy: .venv/bin/pip install py-spy")

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        if self.directory is None or self.executable is None:
            yield
            return
        output = self.directory / f"{name}.txt"
        recorder = Child(
            f"py-spy {name}",
            [
                self.executable,
                "record",
                f"--pid={self.parley_pid}",
                "--subprocesses",
                "--threads",
                "--nonblocking",  # never pauses Parley, so the timings stay honest
                "--rate=250",
                "--format=raw",
                f"--output={output}",
            ],
            env=os.environ,
            cwd=self.workdir,
            log_path=self.workdir / f"py-spy-{name}.log",
        )
        time.sleep(1.0)  # attaching takes a moment
        try:
            yield
        finally:
            recorder.stop(grace=30, signum=signal.SIGINT)  # SIGINT: py-spy writes and exits
            log(f"py-spy profile of {name}: {output}")


class Clients:
    """Pooled clients, one per CLIENT_SHARD streams: httpcore's pool scans all its connections on
    every request and response, so one pool of 500 streams costs O(n^2) and made the load client,
    not the servers, the bottleneck."""

    def __init__(self, env: Environment, streams: int) -> None:
        # Idle connections are dropped before Parley's uvicorn drops them (after 5 s): a request
        # sent on a connection the server is closing fails before any answer, which would count
        # as an error of Parley's. Browsers retry such a request; httpx does not.
        limits = httpx.Limits(
            max_connections=CLIENT_SHARD * 2, max_keepalive_connections=None, keepalive_expiry=3.0
        )
        timeout = httpx.Timeout(connect=30.0, read=120.0, write=30.0, pool=60.0)
        shards = max(1, math.ceil(streams / CLIENT_SHARD))
        self._parley = [
            httpx.AsyncClient(base_url=env.parley_url, limits=limits, timeout=timeout)
            for _ in range(shards)
        ]
        self._upstream = [
            httpx.AsyncClient(base_url=env.upstream_url, limits=limits, timeout=timeout)
            for _ in range(shards)
        ]

    def parley(self, stream: int = 0) -> httpx.AsyncClient:
        return self._parley[stream // CLIENT_SHARD % len(self._parley)]

    def upstream(self, stream: int = 0) -> httpx.AsyncClient:
        return self._upstream[stream // CLIENT_SHARD % len(self._upstream)]

    async def aclose(self) -> None:
        await asyncio.gather(*(c.aclose() for c in [*self._parley, *self._upstream]))


def settings_overrides(redis_url: str | None) -> tuple[dict[str, str], set[str], list[str]]:
    """Generous values for whatever rate-limit and quota settings Parley has today, read from
    its Settings class at run time (they are being added while this benchmark is written)."""
    sys.path.insert(0, str(ROOT))
    config = importlib.import_module("app.core.config")
    fields: dict[str, Any] = config.Settings.model_fields
    overrides: dict[str, str] = {}
    for name, info in fields.items():
        default = info.default
        if isinstance(default, str) and LIMIT_SYNTAX.match(default):
            overrides[name.upper()] = "1000000/minute"
        elif (
            isinstance(default, int)
            and not isinstance(default, bool)
            and ("rate_limit" in name or "quota" in name)
        ):
            overrides[name.upper()] = str(10**12)
    notes = []
    if redis_url and "redis_url" not in fields:
        notes.append("REDIS_URL is set but this Parley has no redis_url setting: it is ignored")
    return overrides, set(fields), notes


def migrate(database_url: str, cwd: Path, env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(ROOT / "alembic.ini"), "upgrade", "head"],
        cwd=cwd,
        env={**env, "DATABASE_URL": database_url},
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def _postgres_admin(statement: str) -> None:
    import asyncpg  # Parley's own driver; only needed for --db postgres

    connection = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def create_database(args: argparse.Namespace, workdir: Path, stack: contextlib.ExitStack) -> str:
    if args.db == "sqlite":
        return f"sqlite+aiosqlite:///{workdir / 'parley.db'}"
    name = f"parley_bench_{uuid.uuid4().hex[:12]}"
    asyncio.run(_postgres_admin(f'CREATE DATABASE "{name}"'))
    log(f"created Postgres database {name}")

    def drop() -> None:
        asyncio.run(_postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        log(f"dropped Postgres database {name}")

    stack.callback(drop)
    parts = urlsplit(POSTGRES_ADMIN_DSN)
    return urlunsplit(("postgresql+asyncpg", parts.netloc, f"/{name}", "", ""))


def start_servers(
    args: argparse.Namespace,
    stack: contextlib.ExitStack,
    extra_env: dict[str, str] | None = None,
) -> Environment:
    workdir = Path(tempfile.mkdtemp(prefix="parley-bench-"))
    stack.callback(shutil.rmtree, workdir, True)
    overrides, setting_names, notes = settings_overrides(args.redis_url)
    # Nothing from the caller's shell or a .env may change Parley's settings: drop every variable
    # named like a setting, and run from the temporary directory (pydantic-settings reads ./.env).
    base_env = {k: v for k, v in os.environ.items() if k.lower() not in setting_names}
    base_env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])
    )

    upstream_port = free_port()
    upstream = Child(
        "fake upstream",
        [
            sys.executable,
            str(ROOT / "bench" / "_fake_upstream_server.py"),
            f"--port={upstream_port}",
            f"--tokens={args.tokens}",
            f"--token-delay={args.token_delay}",
            f"--guard-delay={args.guard_delay}",
        ],
        env=base_env,
        cwd=workdir,
        log_path=workdir / "upstream.log",
    )
    stack.callback(upstream.stop)
    upstream_url = f"http://127.0.0.1:{upstream_port}"
    wait_for_http(f"{upstream_url}/v1/models", upstream)

    database_url = create_database(args, workdir, stack)
    migrate(database_url, workdir, base_env)

    parley_env = {
        **base_env,
        "DATABASE_URL": database_url,
        "SECRET_KEY": secrets.token_urlsafe(48),
        "ENVIRONMENT": "development",
        "LLM_BASE_URL": f"{upstream_url}/v1",
        "LLM_MODEL": MODEL,
        "LOG_LEVEL": "WARNING",
        "BCRYPT_ROUNDS": "12",
        "AUTO_TITLE": "false",
        **overrides,
        **(extra_env or {}),
    }
    if args.redis_url:
        parley_env["REDIS_URL"] = args.redis_url

    def parley_command(port: int, workers: int) -> list[str]:
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            args.app,
            f"--workers={workers}",
            "--host=127.0.0.1",
            f"--port={port}",
            "--log-level=warning",
            "--timeout-graceful-shutdown=5",
        ]

    parley_port = free_port()
    parley = Child(
        "Parley",
        parley_command(parley_port, args.workers),
        env=parley_env,
        cwd=workdir,
        log_path=workdir / "parley.log",
    )
    stack.callback(_report_log, parley)
    stack.callback(parley.stop)
    parley_url = f"http://127.0.0.1:{parley_port}"
    wait_for_http(f"{parley_url}/health", parley, successes=5)
    deadline = time.monotonic() + 60
    while args.workers > 1 and len(tree_pids(parley.pid)) < args.workers + 1:
        if time.monotonic() > deadline:
            raise RuntimeError(f"Parley's workers did not start:\n{parley.tail()}")
        time.sleep(0.1)
    wait_for_http(f"{parley_url}/health", parley, successes=20)

    other_url = None
    if args.resume and args.redis_url:
        other_port = free_port()
        other = Child(
            "Parley (second)",
            parley_command(other_port, 1),
            env=parley_env,
            cwd=workdir,
            log_path=workdir / "parley-second.log",
        )
        stack.callback(other.stop)
        other_url = f"http://127.0.0.1:{other_port}"
        wait_for_http(f"{other_url}/health", other, successes=5)

    parley_sampler = TreeSampler(parley.pid).start()
    stack.callback(parley_sampler.stop)
    upstream_sampler = TreeSampler(upstream.pid, interval=1.0).start()
    stack.callback(upstream_sampler.stop)
    log(f"Parley (pid {parley.pid}, {args.workers} worker(s), {args.db}) on {parley_url}")
    return Environment(
        args=args,
        parley_url=parley_url,
        upstream_url=upstream_url,
        parley=parley_sampler,
        upstream=upstream_sampler,
        overrides=overrides,
        notes=notes,
        profiler=Profiler(args.py_spy, parley.pid, workdir),
        other_url=other_url,
    )


def _report_log(parley: Child) -> None:
    """Parley logs warnings and errors only: show them, grouped, as they explain failed streams."""
    seen: dict[str, int] = {}
    for line in parley.tail(100_000).splitlines():
        try:
            entry = json.loads(line)
            summary = f"{entry.get('level')} {entry.get('logger')}: {entry.get('message')}"
            if entry.get("exc_info"):
                summary += " <- " + entry["exc_info"].strip().splitlines()[-1]
        except (ValueError, AttributeError):
            summary = line.strip()
        if summary:
            seen[summary[:400]] = seen.get(summary[:400], 0) + 1
    if seen:
        log(f"Parley logged {sum(seen.values())} line(s):")
        for summary, count in sorted(seen.items(), key=lambda item: -item[1])[:10]:
            print(f"    {count} x {summary}", file=sys.stderr)
