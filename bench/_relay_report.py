"""bench/relay.py's markdown tables for the default run, and the targets."""

import os

from _common import difference, ms, percentile, signed_ms
from _relay_env import Environment
from _relay_run import Interference, Level

TARGETS = {
    "ttft_p50_1": 10.0,  # ms of added time to first token, p50, at 1 stream
    "ttft_p50_100": 30.0,  # ... at 100 streams
    "rss_500": 300.0,  # MB, peak RSS of the Parley process tree at 500 streams
    "gap_growth": 20.0,  # ms, largest delta gap during logins minus without
}


def cell(direct: float | None, parley: float | None) -> str:
    return f"{ms(direct)} → {ms(parley)}"


def report(env: Environment, levels: list[Level], interference: Interference | None) -> str:
    args = env.args
    out: list[str] = []
    title = f"{args.workers} worker{'s' if args.workers > 1 else ''}, {args.db}"
    if args.redis_url:
        title += ", Redis"
    if args.app != "app.main:create_app":
        title += f", app {args.app}"
    out.append(f"### Relay benchmark: {title}")
    out.append("")
    out.append(
        f"{args.tokens} tokens per reply, {args.token_delay * 1000:g} ms apart (about "
        f"{args.tokens * args.token_delay:.2f} s per reply upstream); {os.cpu_count()} CPUs; "
        f"load average {env.load_average:.1f} at the start; "
        f"bcrypt cost 12; Parley idle RSS {env.idle_rss / 2**20:.0f} MB. Times in ms, "
        "upstream directly → through Parley; added = Parley - direct. Rounds of one stream "
        f"repeat until {args.min_samples} samples."
    )
    for note in env.notes:
        out.append(f"Note: {note}.")
    if env.overrides:
        out.append("Raised for the run: " + ", ".join(sorted(env.overrides)) + ".")
    out.append("")
    out.append(
        "| streams | samples | TTFT p50 | added p50 | TTFT p99 | added p99 | total p50 | "
        "added p50 | total p99 | added p99 | errors | peak RSS |"
    )
    out.append("|" + "---|" * 12)
    for level in levels:
        row = [str(level.streams), str(len(level.parley))]
        for metric in ("ttft", "total"):
            for q in (0.5, 0.99):
                d, p = level.stat("direct", metric, q), level.stat("parley", metric, q)
                row += [cell(d, p), signed_ms(difference(d, p))]
        errors = len(level.errors("parley"))
        direct_errors = len(level.errors("direct"))
        row.append(f"{errors}" + (f" (direct {direct_errors})" if direct_errors else ""))
        row.append(f"{level.peak_rss / 2**20:.0f} MB")
        out.append("| " + " | ".join(row) + " |")

    out.append("")
    out.append(
        "CPU seconds used while the rounds ran, by process (2 CPUs give 2 s per wall second; "
        "'others' is the rest of the machine, which competes with what is measured):"
    )
    out.append("")
    out.append("| streams | rounds | wall s | Parley | fake upstream | load client | others |")
    out.append("|---|---|---|---|---|---|---|")
    for level in levels:
        for label, use in (("direct", level.direct_cpu), ("Parley", level.parley_cpu)):
            out.append(
                f"| {level.streams} | {label} | {use.wall:.2f} | {use.parley:.2f} | "
                f"{use.upstream:.2f} | {use.client:.2f} | {use.others:.2f} |"
            )

    gap_growth = None
    if interference is not None:
        out.append("")
        lat = interference.login_latencies
        out.append(
            f"Logins during streams: {interference.streams} streams back to back "
            f"({interference.replies} replies, {len(interference.stream_errors)} errors); "
            f"{interference.logins} logins at once, {len(interference.login_errors)} failed, "
            f"login time p50 {ms(percentile(lat, 0.5))} ms, max {ms(max(lat, default=None))} ms."
        )
        out.append("")
        out.append(
            "| window | length s | delta gaps | gap p50 | gap p99 | largest gap "
            "| load client's longest stall | streams started | their TTFT p50 | TTFT max "
            "| Parley CPU s | others CPU s |"
        )
        out.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for window in interference.windows:
            gaps, ttfts = window.gaps, window.ttfts
            out.append(
                f"| {window.name} | {window.end - window.start:.2f} | {len(gaps)} | "
                f"{ms(percentile(gaps, 0.5))} | {ms(percentile(gaps, 0.99))} | "
                f"{ms(max(gaps, default=None))} | {ms(max(window.client_stalls, default=None))} | "
                f"{len(ttfts)} | {ms(percentile(ttfts, 0.5))} | "
                f"{ms(max(ttfts, default=None))} | {window.cpu.parley:.2f} | "
                f"{window.cpu.others:.2f} |"
            )
        _before, during, after = interference.windows
        if during.gaps and after.gaps:
            gap_growth = max(during.gaps) - max(after.gaps)

    out.append("")
    out.append("| target | measured | |")
    out.append("|---|---|---|")
    by_n = {level.streams: level for level in levels}

    def check(
        label: str, value: float | None, limit: float, unit: str, *, upto: bool = False
    ) -> None:
        if value is None:
            out.append(f"| {label} | not measured | |")
        else:
            verdict = "met" if value < limit or (upto and value == limit) else "**missed**"
            out.append(f"| {label} | {value:.1f} {unit} | {verdict} |")

    for n, key in ((1, "ttft_p50_1"), (100, "ttft_p50_100")):
        level = by_n.get(n)
        added = (
            difference(level.stat("direct", "ttft", 0.5), level.stat("parley", "ttft", 0.5))
            if level
            else None
        )
        check(
            f"added TTFT p50 at {n} stream{'s' * (n > 1)} < {TARGETS[key]:g} ms",
            None if added is None else added * 1000,
            TARGETS[key],
            "ms",
        )
    top = by_n.get(500)
    if top is None:
        out.append("| zero errors at 500 streams | not measured | |")
    else:
        errors = len(top.errors("parley"))
        out.append(
            f"| zero errors at 500 streams | {errors} | {'met' if errors == 0 else '**missed**'} |"
        )
    check(
        f"peak RSS at 500 streams < {TARGETS['rss_500']:g} MB",
        top.peak_rss / 2**20 if top else None,
        TARGETS["rss_500"],
        "MB",
    )
    check(
        f"largest delta gap grows ≤ {TARGETS['gap_growth']:g} ms during logins",
        None if gap_growth is None else gap_growth * 1000,
        TARGETS["gap_growth"],
        "ms",
        upto=True,
    )
    failures = sorted({e for level in levels for e in level.errors("parley")})
    if interference is not None:
        failures = sorted({*failures, *interference.stream_errors, *interference.login_errors})
    if failures:
        out.append("")
        out.append("Errors seen through Parley: " + "; ".join(failures[:5]))
    return "\n".join(out)
