"""Data-scale benchmark: list, search and message pages with 10,000 chats and 1,000,000 messages.

    .venv/bin/python bench/data_scale.py --db sqlite
    .venv/bin/python bench/data_scale.py --db postgres  # CREATE DATABASE via BENCH_POSTGRES_DSN

It creates a scratch database, migrates it (`alembic upgrade head`), starts Parley with uvicorn on
a loopback port, registers one user over HTTP, bulk-loads that user's chats and messages (see
bench/seed.py), restarts the server so it starts from cold connections, then times requests over
HTTP, one at a time, and prints p50/p95/p99 per scenario. The scratch database is removed at the
end unless --keep is given.
"""

import argparse
import asyncio
import dataclasses
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.seed import SeedPlan, SeedResult, seed  # noqa: E402

PASSWORD = "bench mark passphrase 2026"
LIST_TARGET_MS = 20.0
SEARCH_TARGET_MS = 100.0


@dataclass
class Scenario:
    name: str
    path: str
    params: dict[str, Any]
    target_ms: float


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def scratch_database(backend: str, keep: bool) -> Iterator[tuple[str, str]]:
    """Yields (DATABASE_URL for Parley, target for the loader)."""
    if backend == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix="parley-bench-"))
        path = folder / "bench.db"
        try:
            yield f"sqlite+aiosqlite:///{path}", str(path)
        finally:
            if keep:
                print(f"kept {path}")
            else:
                shutil.rmtree(folder, ignore_errors=True)
        return

    import asyncpg

    admin = os.environ.get("BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
    name = f"parley_bench_{uuid.uuid4().hex[:8]}"

    async def admin_command(statement: str) -> None:
        connection = await asyncpg.connect(admin)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    asyncio.run(admin_command(f'CREATE DATABASE "{name}"'))
    dsn = f"{admin.rsplit('/', 1)[0]}/{name}"
    try:
        yield "postgresql+asyncpg://" + dsn.split("://", 1)[1], dsn
    finally:
        if keep:
            print(f"kept database {name}")
        else:
            asyncio.run(admin_command(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def migrate(database_url: str) -> None:
    from alembic.config import Config

    from alembic import command

    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "alembic"))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logger"] = False
    command.upgrade(config, "head")


class Server:
    """Parley under uvicorn in a child process, as `make run` starts it."""

    def __init__(self, database_url: str) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "ENVIRONMENT": "development",
            "LOG_LEVEL": "WARNING",
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app"]
        command += ["--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"]
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base_url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("the server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.process = None


def register(base_url: str) -> tuple[str, uuid.UUID]:
    response = httpx.post(
        f"{base_url}/api/auth/register",
        json={"email": "bench@example.com", "display_name": "Bench", "password": PASSWORD},
        timeout=30,
    )
    response.raise_for_status()
    body = response.json()
    return body["access_token"], uuid.UUID(body["user"]["id"])


def follow(http: httpx.Client, path: str, key: str, pages: int, **params: Any) -> str:
    """The cursor reached after `pages` pages, as a client scrolling that far would hold."""
    cursor: str | None = None
    for _ in range(pages):
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = http.get(path, params=query)
        response.raise_for_status()
        cursor = response.json()[key]
        if cursor is None:
            raise RuntimeError(f"{path} ran out of pages")
    assert cursor is not None
    return cursor


def scenarios(http: httpx.Client, plan: SeedPlan, facts: SeedResult) -> list[Scenario]:
    messages = f"/api/chats/{facts.big_chat_id}/messages"
    # Halfway down the chat list, and halfway up the big chat.
    chat_pages = max(1, plan.chats // 2 // 20)
    deep_chats = follow(http, "/api/chats", "next_cursor", chat_pages, limit=20)
    deep_messages = follow(http, messages, "older_cursor", plan.big_chat_messages // 100, limit=50)
    deep_newer = http.get(messages, params={"limit": 50, "cursor": deep_messages}).json()
    # The big chat has an edited question at depth 10: its old version starts another branch.
    hundreds = plan.big_chat_messages // 100 - 1
    first_hundred = follow(http, messages, "older_cursor", hundreds, limit=100)
    old_branch = http.get(messages, params={"limit": 100, "cursor": first_hundred}).json()["items"]
    branch_leaf = next(m["sibling_ids"][0] for m in old_branch if len(m["sibling_ids"]) > 1)
    title_page_2 = follow(http, "/api/chats", "next_cursor", 1, q=facts.title_word)
    common, medium, rare = facts.word_counts
    found = {word: f"{count:,} msgs" for word, count in facts.word_counts.items()}
    return [
        Scenario("GET /api/chats (first page)", "/api/chats", {"limit": 20}, LIST_TARGET_MS),
        Scenario(
            f"GET /api/chats (page {chat_pages + 1}, {chat_pages * 20:,} chats deep)",
            "/api/chats",
            {"limit": 20, "cursor": deep_chats},
            LIST_TARGET_MS,
        ),
        Scenario(f"q: rare word ({found[rare]})", "/api/chats", {"q": rare}, SEARCH_TARGET_MS),
        Scenario(
            f"q: medium word ({found[medium]})", "/api/chats", {"q": medium}, SEARCH_TARGET_MS
        ),
        Scenario(
            f"q: common word ({found[common]})", "/api/chats", {"q": common}, SEARCH_TARGET_MS
        ),
        Scenario(
            "q: two-word prefix", "/api/chats", {"q": f"{medium[:4]} {rare[:4]}"}, SEARCH_TARGET_MS
        ),
        Scenario(
            "q: title word, page 2",
            "/api/chats",
            {"q": facts.title_word, "cursor": title_page_2},
            SEARCH_TARGET_MS,
        ),
        Scenario(
            f"messages: newest 50 ({plan.big_chat_messages:,}-msg chat)",
            messages,
            {"limit": 50},
            LIST_TARGET_MS,
        ),
        Scenario(
            f"messages: older page, {plan.big_chat_messages // 2:,} deep",
            messages,
            {"limit": 50, "cursor": deep_messages},
            LIST_TARGET_MS,
        ),
        Scenario(
            f"messages: newer page, {plan.big_chat_messages // 2:,} deep",
            messages,
            {"limit": 50, "cursor": deep_newer["newer_cursor"]},
            LIST_TARGET_MS,
        ),
        Scenario(
            "messages: older branch (leaf_id)",
            messages,
            {"limit": 50, "leaf_id": branch_leaf},
            LIST_TARGET_MS,
        ),
    ]


def measure(http: httpx.Client, scenario: Scenario, requests: int) -> list[float]:
    def once() -> float:
        started = time.perf_counter()
        response = http.get(scenario.path, params=scenario.params)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"{scenario.name}: {response.status_code} {response.text[:200]}")
        return elapsed

    for _ in range(max(10, requests // 10)):
        once()
    return [once() for _ in range(requests)]


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def print_table(backend: str, rows: list[tuple[Scenario, list[float]]]) -> None:
    width = max(len(scenario.name) for scenario, _ in rows)
    header = f"{'scenario':<{width}}  {'p50':>7}  {'p95':>7}  {'p99':>7}  {'target':>7}  ok"
    print(f"\n{backend}: milliseconds per request over HTTP ({len(rows[0][1])} requests each)")
    print(header)
    print("-" * len(header))
    for scenario, samples in rows:
        p99 = percentile(samples, 0.99)
        print(
            f"{scenario.name:<{width}}  {statistics.median(samples):7.1f}  "
            f"{percentile(samples, 0.95):7.1f}  {p99:7.1f}  "
            f"{scenario.target_ms:7.0f}  {'yes' if p99 < scenario.target_ms else 'NO'}"
        )


def time_scenarios(
    backend: str, server: Server, token: str, plan: SeedPlan, facts: SeedResult, requests: int
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    load_before = os.getloadavg()[0]
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as http:
        timed: list[tuple[Scenario, list[float]]] = []
        for scenario in scenarios(http, plan, facts):
            timed.append((scenario, measure(http, scenario, requests)))
    print_table(backend, timed)
    # Other work on the machine shows in the tail latencies: say how busy it was.
    print(
        f"load average (1 min) before / after timing: {load_before:.2f} / "
        f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    )


def rerun(saved: Path, requests: int) -> int:
    """Times a database kept by an earlier --keep run again, without seeding it anew."""
    state = json.loads(saved.read_text())
    plan = SeedPlan(**state["plan"])
    facts = SeedResult(
        big_chat_id=uuid.UUID(state["big_chat_id"]),
        title_word=state["title_word"],
        word_counts=state["word_counts"],
    )
    server = Server(state["database_url"])
    server.start()
    try:
        response = httpx.post(
            f"{server.base_url}/api/auth/login",
            json={"email": "bench@example.com", "password": PASSWORD},
            timeout=30,
        )
        response.raise_for_status()
        time_scenarios(
            state["backend"], server, response.json()["access_token"], plan, facts, requests
        )
    finally:
        server.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--chats", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=300, help="timed requests per scenario")
    parser.add_argument(
        "--keep", action="store_true", help="keep the scratch database (and a file to --reuse it)"
    )
    parser.add_argument(
        "--reuse", type=Path, metavar="FILE", help="time a database kept with --keep again"
    )
    args = parser.parse_args(argv)
    if args.reuse:
        return rerun(args.reuse, args.requests)

    with scratch_database(args.db, args.keep) as (database_url, target):
        migrate(database_url)
        server = Server(database_url)
        server.start()
        try:
            token, user_id = register(server.base_url)
            plan = SeedPlan(chats=args.chats, messages=args.messages)
            facts = seed(args.db, target, user_id, plan)
            if args.keep:
                saved = Path(tempfile.gettempdir()) / f"parley-bench-{args.db}.json"
                state = {
                    "backend": args.db,
                    "database_url": database_url,
                    "plan": dataclasses.asdict(plan),
                    "big_chat_id": str(facts.big_chat_id),
                    "title_word": facts.title_word,
                    "word_counts": facts.word_counts,
                }
                saved.write_text(json.dumps(state))
                print(f"to time it again: {sys.argv[0]} --reuse {saved}")
            server.stop()
            server.start()
            time_scenarios(args.db, server, token, plan, facts, args.requests)
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
