"""Summarises a py-spy collapsed-stack file (relay.py --py-spy DIR) by where Parley's time goes.

    .venv/bin/python bench/_profile_top.py DIR/streams-100.txt [--top 25]

Prints the share of CPU samples by the innermost frame (self time), by the innermost frame in
Parley's own code (app/...: which line of ours caused the work), and by library (inclusive).
"""

import argparse
import re
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def short(frame: str) -> str:
    """`function (path:line)` as py-spy writes it (paths relative to sys.path), stripped."""
    return frame.strip()


def is_ours(frame: str) -> bool:
    match = FRAME.match(frame.strip())
    return bool(match and match["file"].startswith("app/"))


def library(frame: str) -> str | None:
    """The top-level package or stdlib module a frame is in (`app` is Parley)."""
    match = FRAME.match(frame.strip())
    if not match or match["file"].startswith("<"):
        return None
    return match["file"].split("/", 1)[0].removesuffix(".py")


def thread_role(frames: list[str]) -> str:
    """What a thread is, from the outermost frames of one of its stacks."""
    text = ";".join(frames)
    if "aiosqlite/core.py" in text and "_connection_worker_thread" in text:
        return "(aiosqlite connection thread)"
    if "_calc_checksum" in text or "passlib" in text:
        return "(worker thread: bcrypt)"
    if "threading.py" in text[:200] or "concurrent/futures/thread.py" in text:
        return "(worker thread)"
    return "(event loop)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()

    self_time: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    libraries: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    total = 0
    for line in args.profile.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        parts = stack.split(";")
        labels = [p.strip() for p in parts if p.startswith(("process ", "thread ("))]
        frames = [p for p in parts if FRAME.match(p.strip()) and p.strip() not in labels]
        process = next((label for label in labels if label.startswith("process ")), "")
        thread = next((label for label in labels if label.startswith("thread (")), "")
        threads[f"{process.split(':', 1)[0]} {thread} {thread_role(frames)}"] += count
        if frames:
            self_time[short(frames[-1])] += count
        own = [f for f in frames if is_ours(f)]
        ours[short(own[-1]) if own else "(no Parley frame on the stack)"] += count
        for name in {re.sub(r":\d+\)$", ")", f.strip()) for f in own}:
            functions[name] += count
        for name in {library(f) for f in frames} - {None}:
            libraries[str(name)] += count
    if not total:
        raise SystemExit("no samples")

    def show(title: str, counter: Counter[str]) -> None:
        print(f"\n{title}")
        for name, count in counter.most_common(args.top):
            print(f"  {100 * count / total:5.1f}%  {name}")

    print(f"{total} samples in {args.profile}")
    show("By process and thread:", threads)
    show("Self time, innermost frame:", self_time)
    show("Innermost frame in Parley's code (app/):", ours)
    show("Inclusive, by Parley function (time in it and everything it called):", functions)
    show("Inclusive, by library:", libraries)


if __name__ == "__main__":
    main()
