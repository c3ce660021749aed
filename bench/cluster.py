"""`make bench CLUSTER=1` (`python -m bench.run --cluster`): the HTTP load phases against the
local cluster (deploy/local/cluster.py) instead of one process of each part.

Every acknowledged command there costs more than on one node: its commit waits for the
synchronous standby's flush, and its record for two of three brokers. The same compiled load
generator and the same phases (a warm-up, open loops at the given rates, a closed loop) run
through HAProxy against two registries; the figures replace `bench/results/cluster.md` (and
`cluster.json`, the measurements, not committed) beside the single-node ones of `latest.md`, and
what no report there cites is deleted (bench/publish.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import publish
from bench.cpu import CpuMeter
from bench.load import Load, PhaseResult
from bench.report import best_sustained
from bench.workload import party_ids, run_tag
from deploy.local.cluster import ClusterPorts, LocalCluster
from deploy.tokens import DEV_TOKEN_TTL, mint
from services.common.auth import ALL_SCOPES

ROOT = Path(__file__).resolve().parents[1]
LOCAL = ROOT / ".local" / "bench-cluster"


def say(message: str) -> None:
    print(f"[bench cluster] {message}", flush=True)


async def phases(cluster: LocalCluster, args: argparse.Namespace) -> dict[str, Any]:
    tokens = [
        mint(f"bench-client-{i}", ALL_SCOPES, party_ids(), ttl=DEV_TOKEN_TTL) for i in range(args.clients)
    ]
    meter = CpuMeter()
    done: list[PhaseResult] = []
    async with Load(
        cluster.registry_url,
        cluster.projections_url,
        cluster.database_url,
        tokens,
        run_tag(),
        meter,
        time.perf_counter(),
    ) as load:
        say(f"▶ warm-up: closed loop for {args.warmup:g}s ({args.clients} clients)")
        warm = await load.closed_loop("warm-up", args.warmup)
        if warm.errors:
            raise RuntimeError(f"the warm-up failed: {warm.errors}; see {cluster.logs}")
        await load.wait_applied(load.last_position)
        for rate in args.rates:
            name = f"open {rate:g}/s"
            say(f"▶ {name} for {args.duration:g}s")
            done.append(await load.open_loop(name, rate, args.duration, args.lag_every))
            await load.wait_applied(load.last_position)
        say(f"▶ closed loop (as fast as it goes) for {args.duration:g}s")
        done.append(await load.closed_loop("closed max", args.duration, args.lag_every))
        catch_up = await load.wait_applied(load.last_position)
    return {"phases": [p.to_json() for p in done], "catch_up_seconds": round(catch_up, 3)}


def render(results: dict[str, Any], single: dict[str, Any] | None) -> str:
    lines = [
        "# `make bench CLUSTER=1`: the local cluster",
        "",
        f"Run {results['started_at']} on {results['cpu_count']} cores: 3 Kafka brokers (topic RF 3, "
        "min.insync.replicas 2), a PostgreSQL primary with a synchronous standby, 2 registries and 2 "
        "projections APIs behind HAProxy, 2 relays, 2 workers, and the load generator, all on this machine.",
        "",
        "| phase | sent | ok | errors | commands/s | p50 ms | p99 ms | projection lag p99 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for phase in results["load"]["phases"]:
        latency, lag = phase.get("latency", {}), phase.get("lag_http", {})
        lines.append(
            f"| {phase['name']} | {phase['sent']:,} | {phase['ok']:,} | {sum(phase['errors'].values())} | "
            f"{phase['sustained']:.0f} | {latency.get('p50', 0):.1f} | {latency.get('p99', 0):.1f} | "
            f"{lag.get('p99', 0):.0f} |"
        )
    best, phase, _ = best_sustained(results)
    lines += ["", f"Best sustained without errors (a phase that kept up): {best:.0f} commands/s ({phase})."]
    if single is not None:
        alone, alone_phase, _ = best_sustained(single)
        lines.append(
            f"Single node (`make bench`, [latest.md](latest.md), {single['started_at']}): "
            f"{alone:.0f} commands/s ({alone_phase})."
        )
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    shutil.rmtree(LOCAL, ignore_errors=True)
    cluster = LocalCluster(LOCAL, ROOT / ".cache", ClusterPorts.free())
    started = time.monotonic()
    try:
        cluster.start()
        cluster.wait_ready()
        say(f"cluster up in {time.monotonic() - started:.1f}s")
        results: dict[str, Any] = {
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "cpu_count": os.cpu_count(),
            "settings": {"rates": args.rates, "duration_seconds": args.duration, "clients": args.clients},
            "load": asyncio.run(phases(cluster, args)),
        }
    finally:
        cluster.stop()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    (out / "cluster.json").write_text(json.dumps(results, indent=2) + "\n")
    latest = out / "latest.json"
    single = json.loads(latest.read_text()) if latest.exists() else None
    (out / "cluster.md").write_text(render(results, single))
    say(f"wrote {out / 'cluster.md'}")
    for path in publish.prune(out):
        say(f"removed {path}: no report cites it")
    print((out / "cluster.md").read_text())
    return 0
