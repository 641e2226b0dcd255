"""Child processes for the benchmarks: start, wait for, measure (RSS, CPU) and always stop them."""

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Child:
    """A process in a process group of its own (so its whole group can be ended, and the
    terminal's Ctrl-C reaches only the benchmark, which then stops it in order), but in the
    benchmark's session. Output goes to a log file.

    Not in a session of its own: where Linux's autogroup scheduling is on (the default on most
    distributions, and here), CPU time is shared between sessions first and priorities count only
    inside one. Parley's password hashing, a lower-priority thread, would then compete with the
    load client and the fake upstream as an equal, although they stand in for browsers and a GPU
    server on other machines; in one session it yields to them as it yields to Parley's loop."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path,
        log_path: Path,
    ) -> None:
        self.name = name
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            process_group=0,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, grace: float = 10.0, signum: int = signal.SIGTERM) -> None:
        """`signum` to the process group (uvicorn's workers included), SIGKILL after `grace`."""
        try:
            if self.alive():
                self._signal_group(signum)
                try:
                    self.process.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    self._signal_group(signal.SIGKILL)
                    self.process.wait(timeout=5)
            # Workers may outlive a master that was killed: end whatever is left in the group.
            self._signal_group(signal.SIGKILL)
        finally:
            self._log.close()

    def _signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signum)  # process_group=0: the group id is our pid

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def wait_for_http(url: str, child: Child, *, timeout: float = 60.0, successes: int = 1) -> None:
    """Polls `url` until it answers 200 `successes` times in a row; fails early if `child` died."""
    deadline = time.monotonic() + timeout
    streak = 0
    with httpx.Client(timeout=2.0) as client:
        while streak < successes:
            if not child.alive():
                raise RuntimeError(f"{child.name} exited early:\n{child.tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{child.name} did not answer {url} in time:\n{child.tail()}")
            try:
                ok = client.get(url).status_code == 200
            except httpx.TransportError:
                ok = False
            streak = streak + 1 if ok else 0
            time.sleep(0.02 if ok else 0.1)


# --- /proc ---------------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may contain spaces: split after the last ")".
    return raw[raw.rindex(")") + 2 :].split()


def tree_pids(root: int) -> list[int]:
    """`root` and all its descendants (uvicorn's master and workers, and their helpers)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def rss_bytes(pid: int) -> int:
    """VmRSS from /proc/<pid>/status (0 for a process that is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cpu_seconds(pids: Sequence[int]) -> float:
    """User plus system CPU time of these processes so far."""
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU time every process on the machine has used so far (all CPUs, idle and iowait not)."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


class TreeSampler:
    """Samples the summed RSS of a process tree every `interval` seconds in a thread (so a busy
    event loop in the benchmark cannot skip samples) and keeps the peak since the last reset."""

    def __init__(self, root: int, *, interval: float = 0.1) -> None:
        self.root = root
        self.interval = interval
        self.pids = [root]
        self.current = 0
        self.peak = 0
        self.samples = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def start(self) -> "TreeSampler":
        self._sample()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2)

    def reset_peak(self) -> None:
        with self._lock:
            self.peak = self.current

    def cpu_seconds(self) -> float:
        return cpu_seconds(tree_pids(self.root))

    def _sample(self, *, rescan: bool = True) -> None:
        # Walking all of /proc takes milliseconds and holds the GIL, which would delay the load
        # client's event loop in this process: the tree is found again once a second only.
        pids = tree_pids(self.root) if rescan else self.pids
        rss = sum(rss_bytes(pid) for pid in pids)
        with self._lock:
            self.pids = pids
            self.current = rss
            self.peak = max(self.peak, rss)
            self.samples += 1

    def _loop(self) -> None:
        rescan_every = max(1, round(1.0 / self.interval))
        while not self._stop.wait(self.interval):
            self._sample(rescan=self.samples % rescan_every == 0)
