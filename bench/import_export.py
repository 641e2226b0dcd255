"""Import and bulk export at scale: 10,000 ChatGPT conversations with 200,000 messages.

    .venv/bin/python bench/import_export.py --db sqlite
    .venv/bin/python bench/import_export.py --db postgres  # CREATE DATABASE via BENCH_POSTGRES_DSN
    .venv/bin/python bench/import_export.py --conversations 1000  # a quick run

It writes a ChatGPT conversations.json (the `mapping` tree: a null root, a hidden system node,
questions and answers, one answer per conversation regenerated so that it has a sibling) to a
temporary file, creates a scratch database, migrates it, starts Parley with uvicorn (as
bench/data_scale.py does), registers a user, and then over HTTP:

1. imports the file (POST /api/chats/import, streamed from disk);
2. imports it again (every conversation unchanged);
3. exports every chat (GET /api/chats/export, the zip read as it streams and thrown away).

For each it prints the time, and the server's RSS before and at its peak (VmRSS of the uvicorn
process, sampled every 100 ms in a thread). Targets: the import under 60 s, and RSS growth under
150 MB for the import and for the export.
"""

import argparse
import contextlib
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench.data_scale import Server, migrate, register, scratch_database  # noqa: E402

IMPORT_TARGET_S = 60.0
RSS_TARGET_MB = 150.0
T0 = 1_700_000_000.0
_TEXT = (
    "the quick brown fox jumps over a lazy dog while parley imports every branch of every "
    "conversation without holding the whole file in memory"
)
WORDS = _TEXT.split()


def sentence(seed: int, words: int = 18) -> str:
    return " ".join(WORDS[(seed * 7 + i * 3) % len(WORDS)] for i in range(words))


def conversation(index: int, messages: int) -> dict[str, object]:
    """A ChatGPT conversation of `messages` messages (plus the root and a hidden system note):
    question/answer pairs, the first answer regenerated once."""
    t = T0 + index * 600
    mapping: dict[str, dict[str, object]] = {}

    def node(node_id: str, parent: str | None, message: dict[str, object] | None) -> None:
        mapping[node_id] = {"id": node_id, "message": message, "parent": parent, "children": []}
        if parent is not None:
            children = mapping[parent]["children"]
            assert isinstance(children, list)
            children.append(node_id)

    def message(role: str, text: str, at: float | None) -> dict[str, object]:
        return {
            "id": str(uuid.uuid4()),
            "author": {"role": role, "name": None, "metadata": {}},
            "create_time": at,
            "update_time": None,
            "content": {"content_type": "text", "parts": [text]},
            "status": "finished_successfully",
            "end_turn": True,
            "weight": 1.0,
            "metadata": {"model_slug": "gpt-4o"} if role == "assistant" else {},
            "recipient": "all",
        }

    node("root", None, None)
    system = message("system", "", None)
    system["metadata"] = {"is_visually_hidden_from_conversation": True}
    node("system", "root", system)
    parent = "system"
    for turn in range(messages):
        t += 5
        role = "user" if turn % 2 == 0 else "assistant"
        node_id = f"m{turn}"
        if turn == 2:  # the first answer's regenerated sibling, answered further
            node(node_id, "m0", message("assistant", sentence(index + turn), t))
        else:
            node(node_id, parent, message(role, sentence(index + turn), t))
        parent = node_id
    return {
        "title": f"Conversation {index}: {sentence(index, 4)}",
        "create_time": T0 + index * 600,
        "update_time": t,
        "mapping": mapping,
        "current_node": parent,
        "conversation_id": f"bench-{index:06d}",
        "id": f"bench-{index:06d}",
        "default_model_slug": "gpt-4o",
    }


def write_export(out: IO[str], conversations: int, messages: int) -> None:
    """conversations.json written one conversation at a time."""
    out.write("[")
    for index in range(conversations):
        if index:
            out.write(",")
        json.dump(conversation(index, messages), out)
    out.write("]")


def memory(pid: int) -> tuple[int, int]:
    """VmRSS and RssAnon (bytes): all resident memory, and the part that is not pages of files
    (SQLite's mmap of the database file is file pages; its page cache and Python's heap are
    anonymous)."""
    found = {"VmRSS": 0, "RssAnon": 0}
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as status:
        for line in status:
            key = line.split(":", 1)[0]
            if key in found:
                found[key] = int(line.split()[1]) * 1024
    return found["VmRSS"], found["RssAnon"]


class Sampler:
    """The server's memory every 100 ms, in a thread; the peaks since the last reset."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.current = self.peak = memory(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def reset(self) -> tuple[int, int]:
        self.current = self.peak = memory(self.pid)
        return self.current

    def _loop(self) -> None:
        while not self._stop.wait(0.1):
            rss, anon = self.current = memory(self.pid)
            self.peak = (max(self.peak[0], rss), max(self.peak[1], anon))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


@dataclass
class Row:
    step: str
    seconds: float
    before: tuple[int, int]
    peak: tuple[int, int]
    outcome: str

    def growth(self, which: int) -> float:
        return (self.peak[which] - self.before[which]) / 2**20


def measure(sampler: Sampler, step: str, action: Callable[[], str]) -> Row:
    time.sleep(0.5)
    before = sampler.reset()
    started = time.perf_counter()
    outcome = action()
    seconds = time.perf_counter() - started
    time.sleep(0.3)
    return Row(step, seconds, before, sampler.peak, outcome)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=20, help="per conversation")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="parley-import-") as folder:
        path = Path(folder) / "conversations.json"
        started = time.perf_counter()
        with path.open("w") as out:
            write_export(out, args.conversations, args.messages)
        size_mb = path.stat().st_size / 2**20
        print(
            f"wrote {args.conversations:,} conversations ({args.conversations * args.messages:,} "
            f"messages, {size_mb:.0f} MB) in {time.perf_counter() - started:.1f} s",
            file=sys.stderr,
        )
        with scratch_database(args.db, args.keep) as (database_url, _target):
            migrate(database_url)
            server = Server(database_url)
            server.env["IMPORT_MAX_BYTES"] = str(max(200 * 2**20, path.stat().st_size + 2**20))
            server.start()
            assert server.process is not None
            sampler = Sampler(server.process.pid)
            try:
                token, _user_id = register(server.base_url)
                headers = {"Authorization": f"Bearer {token}"}
                with httpx.Client(base_url=server.base_url, headers=headers, timeout=600) as http:
                    rows = run(http, sampler, path)
            finally:
                sampler.stop()
                server.stop()
    print_table(args, size_mb, rows)


def run(http: httpx.Client, sampler: Sampler, path: Path) -> list[Row]:
    rows = []

    def import_file() -> str:
        with path.open("rb") as upload:
            response = http.post(
                "/api/chats/import", files={"file": ("conversations.json", upload)}
            )
        response.raise_for_status()
        summary = response.json()
        return (
            f"{summary['imported']:,} imported, {summary['unchanged']:,} unchanged, "
            f"{summary['messages']:,} messages, {summary['failed']} failed"
        )

    def export_all() -> str:
        size = 0
        with http.stream("GET", "/api/chats/export") as response:
            response.raise_for_status()
            for chunk in response.iter_bytes():
                size += len(chunk)
        return f"{size / 2**20:.0f} MB zip"

    for name, action in (
        ("import", import_file),
        ("import again", import_file),
        ("export all", export_all),
    ):
        print(f"{name}...", file=sys.stderr, flush=True)
        rows.append(measure(sampler, name, action))
    return rows


def print_table(args: argparse.Namespace, size_mb: float, rows: list[Row]) -> None:
    total = args.conversations * args.messages
    print(
        f"\n{args.conversations:,} conversations, {total:,} messages, {size_mb:.0f} MB of "
        f"conversations.json, {args.db} (Python {sys.version.split()[0]}, {os.cpu_count()} CPUs)\n"
    )
    print(
        "| step | seconds | RSS before (MB) | RSS peak (MB) | RSS growth (MB) "
        "| anonymous growth (MB) | result |"
    )
    print("|---|---:|---:|---:|---:|---:|---|")
    for row in rows:
        print(
            f"| {row.step} | {row.seconds:.1f} | {row.before[0] / 2**20:.0f} | "
            f"{row.peak[0] / 2**20:.0f} | {row.growth(0):.0f} | {row.growth(1):.0f} | "
            f"{row.outcome} |"
        )
    imported, exported = rows[0], rows[2]
    checks = [
        (f"import under {IMPORT_TARGET_S:.0f} s", imported.seconds < IMPORT_TARGET_S),
        (f"import RSS growth under {RSS_TARGET_MB:.0f} MB", imported.growth(0) < RSS_TARGET_MB),
        (f"export RSS growth under {RSS_TARGET_MB:.0f} MB", exported.growth(0) < RSS_TARGET_MB),
    ]
    print()
    for label, met in checks:
        print(f"- {label}: {'met' if met else 'MISSED'}")


if __name__ == "__main__":
    main()
