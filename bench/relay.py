"""How much time and memory Parley adds when it relays streamed replies, and whether logins hurt.

    .venv/bin/python bench/relay.py [--streams 1,100,500] [--tokens 64] [--token-delay 0.02]
                                    [--workers 1] [--db sqlite|postgres] [--redis-url URL]
    .venv/bin/python bench/relay.py --resume --redis-url URL [--resume-streams 100] [--workers 2]

With --resume it measures resumable replies instead (bench/README.md): Parley's CPU per relayed
token with Redis publishing on against off (two Parleys side by side, alternating rounds), and
the rejoin latency at `--resume-streams` concurrent streams (request to the first replayed event,
on each Parley), checking that every rejoined reply's text is exactly the reply.

Starts, each in its own process: the tests' fake OpenAI-compatible upstream (paced like a model:
`--tokens` tokens `--token-delay` s apart) and Parley (`uvicorn --factory app.main:create_app`,
`--workers` workers, a fresh migrated SQLite file or Postgres database, bcrypt cost 12). Then, from
this process, for each number of concurrent streams: the same streams straight to the upstream and
through Parley (`POST /api/chats/{id}/messages`, SSE parsed event by event), timing the first
delta and the end. Last, 20 logins while streams run, watching the gaps between deltas. Prints
markdown tables; every process and database it made is removed at the end, Ctrl-C included.
"""

import argparse
import contextlib
import sys
from collections.abc import Sequence

from _common import log, run_async, sigterm_as_interrupt
from _relay_env import start_servers
from _relay_guarded import GUARDED_ENV, measure_guarded, report_guarded
from _relay_report import report
from _relay_resume import measure_resume, resume_report
from _relay_run import MIN_SAMPLES, measure


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Time to first token, total time, errors and RSS: upstream vs through Parley."
    )

    def counts(text: str) -> list[int]:
        values = [int(part) for part in text.split(",") if part.strip()]
        if not values or min(values) < 1:
            raise argparse.ArgumentTypeError("a comma-separated list of positive integers")
        return values

    parser.add_argument("--streams", type=counts, default=[1, 100, 500])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--token-delay", type=float, default=0.02, help="seconds between tokens")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--redis-url", default=None)
    parser.add_argument(
        "--app",
        default="app.main:create_app",
        metavar="MODULE:FACTORY",
        help="the app factory uvicorn serves; another one (on PYTHONPATH) for A/B experiments",
    )
    parser.add_argument("--min-samples", type=int, default=MIN_SAMPLES)
    parser.add_argument(
        "--guarded",
        action="store_true",
        help="instead: compare Parley plain, with an input guard model, and with output checks",
    )
    parser.add_argument("--guard-delay", type=float, default=0.005, help="the stub guard's time")
    parser.add_argument("--guarded-streams", type=int, default=100)
    parser.add_argument("--guarded-rounds", type=int, default=3)
    parser.add_argument("--logins", type=int, default=20, help="0 skips the interference check")
    parser.add_argument("--interference-streams", type=int, default=100)
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=0.0,
        metavar="S",
        help="before each phase, wait up to S seconds for other processes to go quiet",
    )
    parser.add_argument(
        "--py-spy", metavar="DIR", help="profile Parley with py-spy during each measured phase"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="measure resumable replies instead (needs --redis-url): CPU per token with Redis "
        "publishing on and off, and rejoin latency",
    )
    parser.add_argument("--resume-streams", type=int, default=100)
    parser.add_argument("--cpu-pairs", type=int, default=3, help="CPU rounds per Parley")
    args = parser.parse_args(argv)
    if args.resume and not args.redis_url:
        parser.error("--resume needs --redis-url")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.guarded:
        with sigterm_as_interrupt(), contextlib.ExitStack() as stack:
            env = start_servers(args, stack, GUARDED_ENV)
            runs, guard_latency = run_async(measure_guarded(env))
        print(report_guarded(args, runs, guard_latency))
        return 0
    if args.resume:
        with sigterm_as_interrupt(), contextlib.ExitStack() as stack:
            off = start_servers(argparse.Namespace(**{**vars(args), "redis_url": None}), stack)
            on = start_servers(args, stack)
            table = resume_report(run_async(measure_resume(off, on)))
        print(table)
        return 0
    with sigterm_as_interrupt(), contextlib.ExitStack() as stack:
        env = start_servers(args, stack)
        levels, interference = run_async(measure(env))
        table = report(env, levels, interference)
    print(table)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        log("interrupted; everything started was stopped")
        sys.exit(130)
