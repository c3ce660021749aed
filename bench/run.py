"""`make bench` (`python -m bench.run [--quick]`): how fast, beside the ceilings and a peer.

Runs on a fresh local PostgreSQL and Kafka under `.local/bench/` (or DATABASE_URL /
KAFKA_BOOTSTRAP_SERVERS), with the registry, the relay and the projections as separate
processes, and replaces bench/results/latest.md and latency.png (the report and its chart) and
latest.json (the measurements, not committed); then deletes what no report there cites
(bench/publish.py), so the directory holds the latest report and the profiles it cites.

Phases, all in one run on one machine:
  1-2. HTTP command load at fixed rates (open loop) and flat out (closed loop), with the
       projection lag sampled after the 2xx;
  4.   ceilings: raw asyncpg inserts of the same rows, raw aiokafka produce of the same
       messages (acks=all, idempotent);
  5.   our append path in-process vs the `eventsourcing` library (own virtualenv);
  3.   replay: >= 100,000 events appended straight through PostgresEventStore, the relay
       and projections catching up, then the audit tool's rebuild from the store and from Kafka.
Durability is never weakened: synchronous_commit and fsync stay on, the producers use acks=all.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench import append, ceilings, log_proofs, peer, publish, replay
from bench.cold import cold_command_costs
from bench.cpu import CpuMeter, per_unit_ms, usage
from bench.events import append_lives, make_lives
from bench.load import Load, PhaseResult
from bench.loadgen import go_version
from bench.plot import BLUE, GREEN, ORANGE, RED, Phase, Series, draw
from bench.profiling import from_file
from bench.report import best_sustained, markdown, verdicts
from bench.stack import BENCH_LOCAL, BENCH_TOKEN_TTL, ROOT, Stack, say
from bench.workload import party_ids, run_tag
from deploy.local.kafka_principals import ADMIN, AUDIT
from deploy.tokens import mint
from services.common.auth import ALL_SCOPES

RESULTS = Path(__file__).resolve().parent / "results"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short phases and small counts (a few minutes)")
    parser.add_argument("--rates", type=str, default=None, help="open-loop rates, e.g. 250,500,1000")
    parser.add_argument("--duration", type=float, default=None, help="seconds per load phase")
    parser.add_argument("--clients", type=int, default=64, help="concurrent clients (keep-alive connections)")
    parser.add_argument(
        "--lag-every", type=int, default=10, help="sample the projection lag every n-th command"
    )
    parser.add_argument(
        "--replay-events", type=int, default=None, help="events appended for the replay figure"
    )
    parser.add_argument("--append-commands", type=int, default=None, help="commands for ours vs the peer")
    parser.add_argument("--skip-peer", action="store_true", help="leave out the eventsourcing peer")
    parser.add_argument("--skip-replay", action="store_true", help="leave out the replay figure")
    parser.add_argument(
        "--registry-workers", type=int, default=2, help="registry worker processes (REGISTRY_WORKERS)"
    )
    parser.add_argument("--profile", action="store_true", help="run the registry under cProfile (slower)")
    parser.add_argument("--render", action="store_true", help="only re-render latest.md/png from latest.json")
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="the HTTP load phases against the local cluster (make cluster's parts) into cluster.md",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=RESULTS,
        help="where latest.json/md and latency.png go (a directory of the bench's own: files no report cites are deleted)",
    )
    args = parser.parse_args(argv)
    quick = args.quick
    args.rates = [float(r) for r in (args.rates or ("250,500" if quick else "250,500,1000")).split(",")]
    args.duration = args.duration or (6.0 if quick else 20.0)
    args.warmup = 4.0 if quick else 10.0
    args.replay_events = args.replay_events or (10_000 if quick else 100_000)
    args.append_commands = args.append_commands or (2_000 if quick else 10_000)
    args.ceiling_commands = 3_000 if quick else 20_000
    args.kafka_messages = 20_000 if quick else 100_000
    return args


def versions(stack: Stack, clients: int) -> dict[str, Any]:
    def git(*cmd: str) -> str:
        done = subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True)
        return done.stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    if git("status", "--porcelain", "--untracked-files=no"):
        commit += "+dirty"
    return {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "postgresql": stack.postgres_version,
        "kafka": stack.kafka_version,
        "asyncpg": version("asyncpg"),
        "aiokafka": version("aiokafka"),
        "httpx": version("httpx"),
        "loadgen": f"bench/loadgen, {go_version()}",
        "platform": platform.platform(),
        "git_commit": commit,
        "clients": clients,
    }


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.stack = Stack(profile=args.profile, registry_workers=args.registry_workers)
        self.meter = CpuMeter()
        self.epoch = time.perf_counter()
        self.tag = run_tag()
        self.results: dict[str, Any] = {
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "mode": "quick" if args.quick else "full",
            "settings": {
                "rates": args.rates,
                "duration_seconds": args.duration,
                "clients": args.clients,
                "lag_every": args.lag_every,
                "replay_events": args.replay_events,
                "append_commands": args.append_commands,
                "ceiling_commands": args.ceiling_commands,
                "kafka_messages": args.kafka_messages,
                "registry_profiled": args.profile,
                "registry_workers": 1 if args.profile else args.registry_workers,
            },
            "cpu_by_phase": {},
        }

    # -- CPU accounting ----------------------------------------------------------------

    def track(self) -> None:
        self.stack.watch(self.meter, os.getpid())

    def measured(self, name: str, cpu: dict[str, float]) -> None:
        self.results["cpu_by_phase"][name] = cpu

    # -- phases ------------------------------------------------------------------------

    async def http_load(self) -> None:
        args = self.args
        tokens = [
            mint(f"bench-client-{i}", ALL_SCOPES, party_ids(), ttl=BENCH_TOKEN_TTL)
            for i in range(args.clients)
        ]
        phases: list[PhaseResult] = []
        async with Load(
            self.stack.registry_url,
            self.stack.projections_url,
            self.stack.database_url,
            tokens,
            self.tag,
            self.meter,
            self.epoch,
        ) as load:
            say(f"▶ warm-up: closed loop for {args.warmup:g}s ({args.clients} clients)")
            warm = await load.closed_loop("warm-up", args.warmup)
            say(f"  warm-up: {warm.ok:,} commands, {sum(warm.errors.values())} errors")
            if warm.errors:
                raise RuntimeError(f"the warm-up failed: {warm.errors}; see {self.stack.logs}")
            await load.wait_applied(load.last_position)
            for rate in args.rates:
                name = f"open {rate:g}/s"
                say(f"▶ {name} for {args.duration:g}s, lag sampled every {args.lag_every}th command")
                phase = await load.open_loop(name, rate, args.duration, args.lag_every)
                phases.append(phase)
                self._phase_done(phase)
                self.stack.check_alive()
                # Let the pipeline settle so that phases do not inherit each other's backlog.
                await load.wait_applied(load.last_position)
            say(
                f"▶ closed loop without the transparency log (no queue trigger, no integrator) for {args.duration:g}s"
            )
            async with log_proofs.log_paused(self.stack.database_url):
                unlogged = await load.closed_loop("closed max, no log", args.duration, args.lag_every)
            self._phase_done(unlogged)
            await load.wait_applied(load.last_position)
            say(f"▶ closed loop (as fast as it goes) for {args.duration:g}s")
            phase = await load.closed_loop("closed max", args.duration, args.lag_every)
            phases.append(phase)
            self._phase_done(phase)
            say("▶ waiting for the projections to apply the last command")
            catch_up = await load.wait_applied(load.last_position)
            say(f"  caught up in {catch_up:.2f}s")
        self.results["load"] = {
            "phases": [p.to_json() for p in phases],
            "catch_up_seconds": round(catch_up, 3),
            "last_position": load.last_position,
            # Not a phase of the verdicts: the same closed loop with the log paused (issue 14's cost).
            "without_log": unlogged.to_json(),
        }

    def _phase_done(self, phase: PhaseResult) -> None:
        self.measured(phase.name, phase.cpu)
        errors = sum(phase.errors.values())
        say(
            f"  {phase.name}: {phase.sustained:,.0f} commands/s sustained, {phase.ok:,} ok, {errors} errors, "
            f"{phase.not_sent} not sent; p50 {phase.latency['p50']:.1f} ms p99 {phase.latency['p99']:.1f} ms; "
            f"lag p99 {phase.lag_http['p99']:.0f} ms (http) {phase.lag_db['p99']:.0f} ms (db); "
            f"machine CPU {phase.cpu.get('machine', 0):.0f}%"
        )

    def log_proofs(self) -> None:
        """The transparency log's proof sizes and times on the tree the load phases grew."""
        say("▶ transparency log: inclusion and consistency proofs over HTTP, verified here")
        token = mint("bench-log-client", ALL_SCOPES, party_ids(), ttl=3600)
        try:
            figures = asyncio.run(log_proofs.measure(self.stack.registry_url, self.stack.database_url, token))
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            self.results["log_proofs"] = {}
            say(f"  not measured: {exc!r}")
            return
        self.results["log_proofs"] = figures
        inclusion = figures["inclusion"]
        say(
            f"  tree {figures['tree_size']:,} leaves; inclusion {inclusion['hashes'].get('max', 0)} hashes at most, "
            f"HTTP p50 {inclusion['http_ms']['p50']:.2f} ms; consistency proofs {figures['consistency']['proofs']}"
        )

    async def run_ceilings(self, lives: list[Any]) -> None:
        args = self.args
        dsn = self.stack.database_url
        say(
            f"▶ ceiling: raw asyncpg, {args.ceiling_commands:,} one-event transactions, {args.clients} clients"
        )
        before = self.meter.snapshot(time.perf_counter())
        pg = await ceilings.postgres_inserts(dsn, lives, args.clients, 20, args.ceiling_commands)
        pg["cpu"] = usage(before, self.meter.snapshot(time.perf_counter()))
        self.measured("ceiling postgres", pg["cpu"])
        say(
            f"  {pg['per_second']:,.0f} transactions/s (p99 {pg['latency_ms']['p99']:.1f} ms); one client commits "
            f"in {pg['single_client_commit_ms']['p50']:.2f} ms; synchronous_commit={pg['synchronous_commit']}"
        )
        await ceilings.drop_schema(dsn)
        say(f"▶ ceiling: raw aiokafka, {args.kafka_messages:,} messages, acks=all, idempotent")
        before = self.meter.snapshot(time.perf_counter())
        kafka = await ceilings.kafka_produce(self.stack.connection(ADMIN), lives, args.kafka_messages)
        kafka["cpu"] = usage(before, self.meter.snapshot(time.perf_counter()))
        self.measured("ceiling kafka", kafka["cpu"])
        say(f"  {kafka['per_second']:,.0f} messages/s ({kafka['megabytes_per_second']} MB/s)")
        self.results["ceilings"] = {"postgres": pg, "kafka": kafka}

    async def append_ours(self) -> None:
        args = self.args
        say(f"▶ append, ours in-process: {args.append_commands:,} commands, {args.clients} clients")
        before = self.meter.snapshot(time.perf_counter())
        result = await append.ours(
            self.stack.database_url, args.append_commands, args.clients, 20, self.tag + "-A"
        )
        after = self.meter.snapshot(time.perf_counter())
        result["cpu"] = usage(before, after)
        result["cpu_ms_per_command"] = per_unit_ms(result["cpu"], after.at - before.at, result["commands"])
        self.measured("append ours", result["cpu"])
        say(
            f"  {result['per_second']:,.0f} commands/s, p99 {result['latency_ms']['p99']:.1f} ms, errors {result['errors']}"
        )
        self.results.setdefault("append", {})["ours"] = result
        self.results["append"]["tree_cost"] = await self.tree_cost(result)
        profiled = max(args.clients, args.append_commands // 4)
        say(f"  profiling {profiled:,} more commands in-process (cProfile; not timed)")
        again = await append.ours(
            self.stack.database_url, profiled, args.clients, 20, self.tag + "-AP", profile=True
        )
        result["profile"] = again["profile"]
        for line in again["profile"][:9]:
            say(f"    {line}")

    async def tree_cost(self, first: dict[str, Any]) -> dict[str, Any]:
        """The transparency log's cost on the command path (issue 14): the same appends with the
        trigger that queues each event for the tree switched off, alternating with runs with it
        (with, without, with, without: the means, so that a drift of the machine falls on both).
        The events appended without it are queued afterwards: the tree still covers every one."""
        args = self.args
        dsn = self.stack.database_url
        say(
            f"▶ append without and with the transparency log's queue trigger, twice ({args.append_commands:,} each)"
        )
        runs: dict[bool, list[dict[str, Any]]] = {True: [first], False: []}
        for number, tree in enumerate((False, True, False)):
            paused = contextlib.nullcontext() if tree else log_proofs.log_paused(dsn)
            async with paused:
                runs[tree].append(
                    await append.ours(dsn, args.append_commands, args.clients, 20, f"{self.tag}-AT{number}")
                )

        def mean(tree: bool, key: str) -> float:
            values = [float(r[key] if key == "per_second" else r["latency_ms"]["p99"]) for r in runs[tree]]
            return sum(values) / len(values)

        with_tree, without = mean(True, "per_second"), mean(False, "per_second")
        ratio = with_tree / without if without else 0.0
        say(f"  {without:,.0f} commands/s without, {with_tree:,.0f} with: {ratio:.3f}")
        return {
            "with_per_second": round(with_tree, 1),
            "without_per_second": round(without, 1),
            "ratio": round(ratio, 3),
            "with_p99_ms": round(mean(True, "p99"), 2),
            "without_p99_ms": round(mean(False, "p99"), 2),
            "runs": {
                "with": [r["per_second"] for r in runs[True]],
                "without": [r["per_second"] for r in runs[False]],
            },
        }

    def append_peer(self) -> None:
        args = self.args
        appended = self.results.setdefault("append", {})
        if args.skip_peer:
            appended["peer_skipped"] = "not measured: --skip-peer"
            return
        say(f"▶ append, eventsourcing peer: {args.append_commands:,} commands, {args.clients} threads")
        try:
            asyncio.run(peer.reset_schema(self.stack.database_url))
            peer.ensure_venv()
            before = self.meter.snapshot(time.perf_counter())
            result, cpu_seconds = peer.run_peer(
                self.stack.database_url, args.append_commands, args.clients, 20, self.tag + "-P"
            )
            after = self.meter.snapshot(time.perf_counter())
        except peer.PeerUnavailable as exc:
            appended["peer_skipped"] = f"not measured: {exc}"
            say(f"  {appended['peer_skipped']}")
            return
        cpu = usage(before, after)
        cpu["peer"] = round(100 * cpu_seconds / (after.at - before.at), 1)
        cpu["others"] = round(max(0.0, cpu["others"] - cpu["peer"]), 1)
        result["cpu"] = cpu
        result["cpu_ms_per_command"] = per_unit_ms(cpu, after.at - before.at, result["commands"])
        self.measured("append peer", cpu)
        appended["peer"] = result
        if appended.get("ours") and result["per_second"]:
            appended["ratio"] = round(appended["ours"]["per_second"] / result["per_second"], 3)
        say(
            f"  eventsourcing {result['version']}: {result['per_second']:,.0f} commands/s, "
            f"p99 {result['latency_ms']['p99']:.1f} ms, errors {result['errors']}"
        )
        asyncio.run(peer.drop_schema(self.stack.database_url))

    async def generate(self, count: int) -> dict[str, Any]:
        agreements = math.ceil(count / 10)
        say(f"▶ replay: making {agreements * 10:,} events in memory (decide, evolve, seal)")
        lives = make_lives(agreements, self.tag + "-R", lambda n: None)
        say(f"  appending them through PostgresEventStore ({agreements:,} appends, 16 at a time)")

        def report(events: int, seconds: float) -> None:
            say(f"  appended {events:,} events, {events / seconds:,.0f} events/s")

        seconds = await append_lives(self.stack.database_url, lives, 16, report)
        events = sum(len(life.envelopes) for life in lives)
        say(f"  {events:,} events in {seconds:.1f}s")
        return {
            "events": events,
            "agreements": agreements,
            "seconds": round(seconds, 3),
            "events_per_second": round(events / seconds, 1),
        }

    async def drain(self) -> dict[str, Any]:
        """The relay restarted alone on the outbox backlog (its figure is the relay's, not shared
        with the projections' CPU), then the projections restarted on everything it published."""
        conn = await asyncpg.connect(self.stack.database_url)
        try:
            backlog = int(await conn.fetchval("SELECT count(*) FROM registry.outbox"))
            total = int(await conn.fetchval("SELECT count(*) FROM registry.events"))
            applied_before = int(await conn.fetchval("SELECT count(*) FROM projections.applied"))
            say(f"▶ restarting the relay alone: outbox backlog {backlog:,} events")
            before = self.meter.snapshot(time.perf_counter())
            started = time.perf_counter()
            self.stack.start_services(("relay",))
            self.track()
            # Not count(*): a scan of the whole outbox, dead rows and all, at every poll.
            relay_seconds = await self._until(
                conn, "SELECT NOT EXISTS (SELECT 1 FROM registry.outbox)", started, "outbox"
            )
            relay_done = self.meter.snapshot(time.perf_counter())
            relay_cpu = usage(before, relay_done)
            say(f"▶ restarting the projections: {total - applied_before:,} events to apply")
            started = time.perf_counter()
            self.stack.start_services(("projections",))
            self.track()
            projection_seconds = await self._until(
                conn, f"SELECT count(*) >= {total} FROM projections.applied", started, "projections", 0.25
            )
            projection_cpu = usage(relay_done, self.meter.snapshot(time.perf_counter()))
        finally:
            await conn.close()
        self.measured("relay drain (alone)", relay_cpu)
        self.measured("projection catch-up", projection_cpu)
        drained = {
            "events": backlog,
            "seconds": round(relay_seconds, 3),
            "events_per_second": round(backlog / relay_seconds, 1) if relay_seconds else 0.0,
            "projection_events": total - applied_before,
            "projection_seconds": round(projection_seconds, 3),
            "projection_events_per_second": round((total - applied_before) / projection_seconds, 1)
            if projection_seconds
            else 0.0,
            "cpu": relay_cpu,
            "cpu_ms_per_event": per_unit_ms(relay_cpu, relay_seconds, backlog),
            "projection_cpu": projection_cpu,
        }
        say(
            f"  relay: {drained['events_per_second']:,.0f} events/s; projections: "
            f"{drained['projection_events_per_second']:,.0f} events/s"
        )
        return drained

    async def _until(
        self, conn: asyncpg.Connection, done: str, started: float, what: str, every: float = 0.1
    ) -> float:
        """Seconds from `started` until the query `done` answers true (polled `every` seconds)."""
        last_say = started
        while not await conn.fetchval(done):
            await asyncio.sleep(every)
            now = time.perf_counter()
            if now - last_say >= 2:
                last_say = now
                say(f"  {what}: {now - started:.0f} s")
            if now - started > 1800:
                raise TimeoutError(f"{what} did not catch up in 30 minutes")
            self.stack.check_alive()
        return time.perf_counter() - started

    def rebuild(self, source: str) -> dict[str, Any]:
        schema = f"bench_rebuild_{source}"
        say(f"▶ replay: the audit tool's rebuild from {source} into {schema}")
        before = self.meter.snapshot(time.perf_counter())
        result, cpu_seconds = replay.run_rebuild(
            source, schema, self.stack.database_url, self.stack.connection(AUDIT).env("AUDIT_")
        )
        after = self.meter.snapshot(time.perf_counter())
        cpu = usage(before, after)
        cpu["rebuild"] = round(100 * cpu_seconds / (after.at - before.at), 1)
        cpu["others"] = round(max(0.0, cpu["others"] - cpu["rebuild"]), 1)
        result["cpu"] = cpu
        result["cpu_ms_per_event"] = per_unit_ms(cpu, after.at - before.at, result["read"])
        self.measured(f"rebuild from {source}", cpu)
        say(f"  {result['events_per_second']:,.0f} events/s over {result['read']:,} events")
        asyncio.run(replay.drop_schema(self.stack.database_url, schema))
        return result

    # -- the whole run -----------------------------------------------------------------

    def run(self) -> int:
        args = self.args
        say(f"benchmark ({self.results['mode']}), tag {self.tag}; {os.cpu_count()} cores")
        try:
            self.stack.start_infrastructure()
            self.stack.start_services()
            self.track()
            self.results["environment"] = versions(self.stack, args.clients)
            asyncio.run(self.http_load())
            self.log_proofs()
            # The rest measures parts alone: the services stop (and the registry's profile is written).
            self.stack.stop_services()
            self.track()
            if args.profile:
                self.results["profile"] = from_file(BENCH_LOCAL / "registry.prof", 25)
            count = max(args.ceiling_commands, args.kafka_messages)
            say(f"▶ making {count:,} sealed events for the ceilings")
            lives = make_lives(math.ceil(count / 10), self.tag + "-C")
            asyncio.run(self.run_ceilings(lives))
            self._ratios()
            asyncio.run(self.append_ours())
            self.append_peer()
            self.cold()
            self._replay()
        finally:
            say("stopping the stack")
            self.stack.stop()
        self.results["verdicts"] = verdicts(self.results)
        self.write()
        self.summary()
        return 0

    def cold(self) -> None:
        """A command on a cold agreement of 10, 1,000 and 10,000 events, with and without snapshots."""
        sizes = (10, 1_000, 10_000)
        say(f"▶ cold agreements: one command on streams of {', '.join(f'{n:,}' for n in sizes)} events")
        figures = asyncio.run(cold_command_costs(self.stack.database_url, sizes, repeats=20, progress=say))
        with_, without = figures["with_snapshots"], figures["without_snapshots"]
        largest, smallest = str(sizes[-1]), str(sizes[0])
        figures["ratio"] = with_["ratio_to_smallest"][largest]
        figures["measured"] = (
            f"{figures['ratio']:.2f} ({with_['median_ms'][largest]:.2f} vs {with_['median_ms'][smallest]:.2f} ms; "
            f"without snapshots {without['ratio_to_smallest'][largest]:.0f}×: "
            f"{without['median_ms'][largest]:,.0f} ms)"
        )
        figures["limit"] = (
            "median of 20 in-process commands, each on a new repository (nothing cached); with snapshots a cold "
            "load reads the latest snapshot and at most the events after it, in one statement"
        )
        self.results["cold"] = figures

    def _replay(self) -> None:
        args = self.args
        result: dict[str, Any] = {}
        self.results["replay"] = result
        if args.skip_replay:
            result["skipped"] = "not measured: --skip-replay"
            return
        result["generated"] = asyncio.run(self.generate(args.replay_events))
        result["relay_drain"] = asyncio.run(self.drain())
        self.stack.stop_services()
        self.track()
        self._ratios()
        if not replay.audit_tool_available():
            result["skipped"] = "not measured: audit tool missing (services/audit/rebuild.py)"
            say(result["skipped"])
            return
        say("▶ the rebuild's ceiling: the same rows read and COPYed into a table, nothing decoded")
        result["rebuild_ceiling"] = asyncio.run(replay.rebuild_ceiling(self.stack.database_url))
        say(f"  {result['rebuild_ceiling']['events_per_second']:,.0f} events/s")
        for source in ("store", "kafka"):
            try:
                result[f"rebuild_{source}"] = self.rebuild(source)
            except (RuntimeError, ValueError, KeyError) as exc:
                result[f"rebuild_{source}"] = {"error": str(exc)}
                say(f"  rebuild from {source} failed: {exc}")

    def _ratios(self) -> None:
        add_ratios(self.results)

    def write(self) -> None:
        write_results(self.results, self.args.out)

    def summary(self) -> None:
        print("", flush=True)
        say("summary")
        for row in self.results["verdicts"]:
            verdict = "—" if row["met"] is None else ("met" if row["met"] else "MISSED")
            print(f"  [{verdict:>6}] {row['target']}: {row['measured']}", flush=True)
            if row["limit"]:
                print(f"           limit: {row['limit']}", flush=True)


def add_ratios(results: dict[str, Any]) -> None:
    """The system's figures as shares of the ceilings measured in the same run."""
    ceilings_ = results.get("ceilings")
    if not ceilings_:
        return
    pg = ("raw asyncpg", ceilings_["postgres"]["per_second"])
    kafka = ("raw aiokafka", ceilings_["kafka"]["per_second"])
    # The best phase that kept up, with no errors and nothing left unsent: the verdict's figure.
    best = best_sustained(results)[0]
    ours = results.get("append", {}).get("ours")
    drain = results.get("replay", {}).get("relay_drain")
    figures = [
        ("HTTP commands/s (best clean phase)", best, pg),
        *([("in-process appends/s (figure 5)", ours["per_second"], pg)] if ours else []),
        ("HTTP commands/s (best clean phase)", best, kafka),
        *([("relay events/s (outbox backlog)", drain["events_per_second"], kafka)] if drain else []),
    ]
    ceilings_["ratios"] = [
        {
            "figure": figure,
            "value": value,
            "ceiling": ceiling,
            "ceiling_value": ceiling_value,
            "ratio": round(value / ceiling_value, 3) if ceiling_value else 0.0,
        }
        for figure, value, (ceiling, ceiling_value) in figures
    ]


def write_results(results: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    (out / "latest.md").write_text(markdown(results), encoding="utf-8")
    phases = results.get("load", {}).get("phases", [])
    bands = [
        Phase(p["name"].replace("open ", ""), p["timeline"][0][0], p["timeline"][-1][0] + 1)
        for p in phases
        if p["timeline"]
    ]
    draw(
        out / "latency.png",
        f"command latency over time ({results['environment']['cpu_count']} cores, "
        f"{results['environment']['clients']} clients)",
        bands,
        [
            Series("p50", BLUE, [(t, v) for p in phases for t, _, v, _ in p["timeline"]]),
            Series("p99", RED, [(t, v) for p in phases for t, _, _, v in p["timeline"]]),
            Series(
                "projection lag (http)",
                GREEN,
                [(t, v) for p in phases for t, v in p["lag_timeline"]],
                joined=False,
            ),
        ],
        [Series("ok/s", ORANGE, [(t, float(n)) for p in phases for t, n, _, _ in p["timeline"]])],
    )
    say(f"wrote {out / 'latest.json'}, {out / 'latest.md'} and {out / 'latency.png'}")
    for path in publish.prune(out):
        say(f"removed {path}: no report cites it")


def render(out: Path) -> None:
    """Re-renders latest.md and latency.png from latest.json (after a change to the report)."""
    measured = out / "latest.json"
    if not measured.is_file():
        # The measurements are not committed (bench/publish.py): only a run on this checkout leaves them.
        raise SystemExit(f"{measured} is missing: --render re-renders the measurements of a run made here")
    results = json.loads(measured.read_text(encoding="utf-8"))
    add_ratios(results)
    results["verdicts"] = verdicts(results)
    write_results(results, out)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.render:
        render(args.out)
        return
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    if args.cluster:
        from bench import cluster

        sys.exit(cluster.run(args))
    sys.exit(Bench(args).run())


if __name__ == "__main__":
    main()
