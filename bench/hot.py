"""Where the command path spends its CPU, in two minutes: the closed loop alone, profiled.

    .venv/bin/python -m bench.hot                    # 20 s closed loop, 64 clients
    .venv/bin/python -m bench.hot --seconds 30 --svg after   # also flame-<service>-after.svg

A developer's loop for the speed work (issue 21): the bench's stack and Go load generator, a
warm-up, then one closed-loop phase while py-spy samples each service (collapsed stacks), and
PostgreSQL's `pg_stat_statements` counts what each statement cost. It prints, for the phase:

- CPU milliseconds per successful command of each process (the bench's noise-resistant figure);
- each service's functions by their own samples (where the CPU goes, not who called it);
- the statements by total execution time, with calls and mean time.

With `--svg TAG` py-spy also writes `bench/results/flame-<service>-TAG.svg` (the flame graphs a
report cites; see bench/README.md for which survive the next run). Its figures are not the
bench's: `make bench` is the measurement, this is the magnifying glass.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import subprocess
import time
from pathlib import Path

import asyncpg

from bench.cpu import CpuMeter
from bench.flame import RESULTS, py_spy
from bench.load import Load
from bench.stack import BENCH_LOCAL, BENCH_TOKEN_TTL, Stack, say
from bench.workload import party_ids, run_tag
from deploy.tokens import mint
from services.common.auth import ALL_SCOPES

# Loaded at the server's start: statements are counted from then on (reset before the phase).
STATEMENTS = {"shared_preload_libraries": "pg_stat_statements", "pg_stat_statements.track": "all"}


def own_samples(collapsed: Path, top: int) -> list[tuple[float, str]]:
    """The leaf frames of py-spy's collapsed stacks (`frame;frame;leaf count`), by share."""
    counts: collections.Counter[str] = collections.Counter()
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        counts[stack.rsplit(";", 1)[-1]] += int(count)
    total = sum(counts.values()) or 1
    return [(100 * n / total, frame) for frame, n in counts.most_common(top)]


async def top_statements(dsn: str, top: int) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(
            """SELECT calls, round(total_exec_time::numeric, 1) AS total_ms,
                      round(mean_exec_time::numeric, 3) AS mean_ms, rows,
                      left(regexp_replace(query, '\\s+', ' ', 'g'), 110) AS query
                 FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT $1""",
            top,
        )
    finally:
        await conn.close()


async def reset_statements(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        await conn.execute("SELECT pg_stat_statements_reset()")
    finally:
        await conn.close()


def record(pids: dict[str, int], seconds: float, out: Path, svg: str | None) -> list[subprocess.Popen[bytes]]:
    spy = py_spy()
    recorders = []
    for name, pid in pids.items():
        formats = [("raw", out / f"{name}.txt")]
        if svg:
            formats.append(("flamegraph", RESULTS / f"flame-{name}-{svg}.svg"))
        for fmt, path in formats:
            recorders.append(
                subprocess.Popen(
                    [
                        *(spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "100"),
                        *("--format", fmt, "--output", str(path), "--nonblocking", "--subprocesses"),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
    return recorders


async def phase(stack: Stack, meter: CpuMeter, args: argparse.Namespace, out: Path) -> None:
    tokens = [
        mint(f"bench-client-{i}", ALL_SCOPES, party_ids(), ttl=BENCH_TOKEN_TTL) for i in range(args.clients)
    ]
    async with Load(
        stack.registry_url,
        stack.projections_url,
        stack.database_url,
        tokens,
        run_tag(),
        meter,
        time.perf_counter(),
    ) as load:
        say(f"warm-up {args.warmup:g}s")
        await load.closed_loop("warm-up", args.warmup)
        await load.wait_applied(load.last_position)
        await reset_statements(stack.database_url)
        pids = {name: pid for name in ("registry", "relay", "projections") if (pid := stack.pid(name))}
        recorders = [] if args.no_profile else record(pids, args.seconds, out, args.svg)
        result = await load.closed_loop("closed max", args.seconds + 1, 10)
        for recorder in recorders:
            recorder.wait()
        statements = await top_statements(stack.database_url, args.top)
    errors = sum(result.errors.values())
    say(
        f"closed loop: {result.sustained:,.0f} commands/s, {errors} errors, p50 {result.latency['p50']:.1f} ms, "
        f"p99 {result.latency['p99']:.1f} ms, lag p99 {result.lag_http['p99']:.0f} ms"
    )
    cpu = ", ".join(
        f"{k} {v:.2f}" for k, v in sorted(result.cpu_ms_per_command.items(), key=lambda kv: -kv[1])
    )
    say(f"CPU ms per command: {cpu}")
    for name in [] if args.no_profile else pids:
        say(f"{name}: own samples")
        for share, frame in own_samples(out / f"{name}.txt", args.top):
            print(f"  {share:5.1f}%  {frame}")
    say(f"statements by total time (of {result.ok:,} commands)")
    for row in statements:
        print(f"  {row['total_ms']:>9} ms {row['calls']:>7} calls {row['mean_ms']:>7} ms  {row['query']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=6)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--registry-workers", type=int, default=2)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--svg", default=None, help="also write bench/results/flame-<service>-SVG.svg")
    parser.add_argument(
        "--no-profile", action="store_true", help="no py-spy: the CPU per command alone, nothing sampling it"
    )
    args = parser.parse_args()
    out = BENCH_LOCAL / "hot"
    out.mkdir(parents=True, exist_ok=True)
    stack = Stack(registry_workers=args.registry_workers, postgres_settings=STATEMENTS)
    meter = CpuMeter()
    try:
        stack.start_infrastructure()
        stack.start_services()
        stack.watch(meter, os.getpid())
        asyncio.run(phase(stack, meter, args, out))
    finally:
        stack.stop()


if __name__ == "__main__":
    main()
