"""Figures 1 and 2: commands over HTTP at fixed rates (open loop) and flat out (closed loop),
and the projection lag seen after a command's 2xx.

The requests are sent by the compiled load generator (bench/loadgen, driven by
bench/loadgen.py); this module plans the lives it walks (bench/workload.py), polls the
read model for the db lag, and turns its records into the phase's figures.

Open loop: a dispatcher releases one command slot every 1/rate seconds whatever the
system does; `clients` keep-alive connections take the slots. A command's latency runs
from its *scheduled* start, so time spent waiting for a free client counts (no
coordinated omission); the service time (from the moment the request was sent) is
reported beside it. Closed loop: every client sends its next command as soon as the
last one answered.

Projection lag, for every `lag_every`-th successful command, two ways:
- `http`: `GET /v1/agreements/{id}?min_position=<position>` on the projections API right
  after the 2xx, the read-your-writes path a client uses (the server re-checks every
  5 ms, doubling up to 100 ms, so this figure is rounded up by the last wait);
- `db`: one connection checks `projections.applied` for the sampled positions every 5 ms,
  the moment the read model's transaction is visible to any query.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench import loadgen
from bench.cpu import CpuMeter, Snapshot, per_unit_ms, process_seconds, usage
from bench.loadgen import Event, Loadgen, Record, Results
from bench.stack import say
from bench.stats import percentile, summary_ms
from bench.workload import LIFE, Planner

KINDS = ("sign", "report", "amend", "close")
# Lives a generator worker walks at once (bench/loadgen/worker.go, as workload.Lives).
ACTIVE_LIVES = 4
# A closed loop's plan assumes at least this many commands/s (and tops up if it runs low).
CLOSED_RATE_GUESS = 1000.0


@dataclass
class PhaseResult:
    name: str
    mode: str
    clients: int
    duration: float
    target_rate: float | None = None
    sent: int = 0
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    not_sent: int = 0
    seconds: float = 0.0
    sustained: float = 0.0
    latency: dict[str, float] = field(default_factory=dict)
    service: dict[str, float] = field(default_factory=dict)
    by_kind: dict[str, dict[str, float]] = field(default_factory=dict)
    lag_http: dict[str, float] = field(default_factory=dict)
    lag_db: dict[str, float] = field(default_factory=dict)
    lag_missing: int = 0
    error_samples: list[str] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    # CPU milliseconds per successful command, per process group
    cpu_ms_per_command: dict[str, float] = field(default_factory=dict)
    # `bench client` split: the Go generator and the Python bench (planner, db-lag poll)
    bench_client_ms_per_command: dict[str, float] = field(default_factory=dict)
    last_position: int = 0
    # (seconds since the bench's epoch, completions, p50 ms, p99 ms) per second
    timeline: list[tuple[float, int, float, float]] = field(default_factory=list)
    lag_timeline: list[tuple[float, float]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items()}


class Load:
    def __init__(
        self,
        registry_url: str,
        projections_url: str,
        database_url: str,
        tokens: list[str],
        tag: str,
        meter: CpuMeter,
        epoch: float,
        *,
        read_schema: str = "projections",
    ) -> None:
        self.registry_url = registry_url
        self.projections_url = projections_url
        self.database_url = database_url
        self.clients = len(tokens)
        self.tokens = tokens
        self.planners = [Planner(i, self.clients, tag) for i in range(self.clients)]
        self.meter = meter
        self.epoch = epoch
        self.read_schema = read_schema
        self.last_position = 0
        self.best_rate = 0.0
        self._planned = 0
        self._phases = 0
        self._go: Loadgen | None = None
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._reader: httpx.AsyncClient | None = None

    async def __aenter__(self) -> Load:
        binary = await asyncio.to_thread(loadgen.build)
        self._dir = tempfile.TemporaryDirectory(prefix="bench-loadgen-")
        self._go = Loadgen(binary)
        await self._go.start(self.registry_url, self.projections_url, self.clients, self.tokens[0])
        # The generator is part of the load side: its CPU counts as `bench client`.
        self.meter.extra["bench client"] = [self._go.pid]
        self._reader = httpx.AsyncClient(base_url=self.projections_url, timeout=30)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.meter.extra.pop("bench client", None)
        if self._go is not None:
            await self._go.close()
        if self._reader is not None:
            await self._reader.aclose()
        if self._dir is not None:
            self._dir.cleanup()

    # -- the plan ----------------------------------------------------------------------

    @property
    def _low(self) -> int:
        # Fewer unstarted lives than this and the generator asks for more mid-phase.
        return ACTIVE_LIVES * self.clients + 200

    def _write_plan(self, lives: int) -> Path:
        """The next `lives` lives, taken from the clients' planners in turn."""
        assert self._dir is not None
        path = Path(self._dir.name) / f"plan-{self._planned}.jsonl"

        def planned() -> Any:
            for n in range(self._planned, self._planned + lives):
                client = n % self.clients
                yield self.tokens[client], self.planners[client].next_life()

        loadgen.write_plan(path, planned())
        self._planned += lives
        return path

    async def _ensure_plan(self, commands: float) -> None:
        """Enough unstarted lives for `commands` more commands, with every worker's lives in
        progress replaced once."""
        assert self._go is not None
        wanted = math.ceil(commands / len(LIFE)) + self._low + ACTIVE_LIVES * self.clients
        if self._go.remaining < wanted:
            path = await asyncio.to_thread(self._write_plan, wanted - self._go.remaining)
            await self._go.plan(path, self._low)

    # -- phases ------------------------------------------------------------------------

    async def open_loop(self, name: str, rate: float, duration: float, lag_every: int = 0) -> PhaseResult:
        """A slot every 1/rate s whatever happens; the backlog may take max(10 s, duration)
        to drain after the last slot, then what is still queued is counted as not sent."""
        await self._ensure_plan(rate * duration)
        result = PhaseResult(name, "open", self.clients, duration, target_rate=rate)
        spec = {"mode": "open", "rate": rate, "drain": max(10.0, duration)}
        await self._run(result, spec, lag_every)
        return result

    async def closed_loop(self, name: str, duration: float, lag_every: int = 0) -> PhaseResult:
        await self._ensure_plan(duration * max(CLOSED_RATE_GUESS, 2 * self.best_rate))
        result = PhaseResult(name, "closed", self.clients, duration)
        await self._run(result, {"mode": "closed"}, lag_every)
        return result

    async def _run(self, result: PhaseResult, spec: dict[str, Any], lag_every: int) -> None:
        assert self._go is not None and self._dir is not None
        go = self._go
        self._phases += 1
        results = Results(Path(self._dir.name) / f"results-{self._phases}.jsonl")
        lag_db: list[float] = []
        pending: dict[int, float] = {}
        top_ups: list[asyncio.Task[None]] = []
        stop = asyncio.Event()
        poller = asyncio.create_task(self._poll_applied(pending, lag_db, stop)) if lag_every else None
        ticker = asyncio.create_task(self._ticker(result.name, results, result.target_rate, stop))
        marks: dict[str, Any] = {}

        async def top_up() -> None:
            path = await asyncio.to_thread(self._write_plan, max(1000, 8 * self.clients))
            await go.send_plan(path, self._low)

        def on_event(event: Event) -> None:
            if event["ev"] == "sample":
                pending[int(event["position"])] = float(event["at"])
            elif event["ev"] == "finished":
                marks["after"] = self.meter.snapshot(time.perf_counter())
                marks["go"] = process_seconds(go.pid)
                marks["python"] = process_seconds(os.getpid())
            elif event["ev"] == "low" and not any(not t.done() for t in top_ups):
                top_ups.append(asyncio.create_task(top_up()))

        before = self.meter.snapshot(time.perf_counter())
        go_before, python_before = process_seconds(go.pid), process_seconds(os.getpid())
        try:
            done = await go.run(
                {"name": result.name, "duration": result.duration, "lag_every": lag_every,
                 "results": str(results.path), "probe_wait": 35.0, **spec},
                on_event,
            )  # fmt: skip
            await asyncio.gather(*top_ups)
            await go.settle()
        finally:
            stop.set()
            if poller is not None:
                await poller
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        after: Snapshot = marks["after"]
        results.read()
        result.not_sent = int(done["not_sent"])
        result.lag_missing = int(done["lag_missing"]) + len(pending)
        self.last_position = max(self.last_position, int(done["last_position"]))
        result.cpu = usage(before, after)
        self._summarise(result, results, float(done["started"]))
        result.lag_db = summary_ms(lag_db)
        if int(done["exhausted"]):
            result.error_samples.append(f"the plan ran out of lives {done['exhausted']} times")
        seconds = after.at - before.at
        result.cpu_ms_per_command = per_unit_ms(result.cpu, seconds, result.ok)
        if result.ok:
            result.bench_client_ms_per_command = {
                "go": round(1000 * (marks["go"] - go_before) / result.ok, 3),
                "python": round(1000 * (marks["python"] - python_before) / result.ok, 3),
            }
        if not result.errors:
            self.best_rate = max(self.best_rate, result.sustained)

    def _summarise(self, result: PhaseResult, results: Results, begun: float) -> None:
        records = results.records
        ok = [r for r in records if 200 <= r.status < 300]
        result.sent = len(records)
        result.ok = len(ok)
        result.errors = dict(
            Counter(str(r.status) if r.status else "no-answer" for r in records if not 200 <= r.status < 300)
        )
        last = max((r.end for r in records), default=begun)
        result.seconds = round(max(last - begun, result.duration if result.mode == "closed" else 0.0), 3)
        result.sustained = round(result.ok / result.seconds, 1) if result.seconds else 0.0
        result.latency = summary_ms([r.end - r.intended for r in ok])
        result.service = summary_ms([r.end - r.start for r in ok])
        result.by_kind = {
            kind: summary_ms([r.end - r.start for r in ok if r.kind == kind])
            for kind in KINDS
            if any(r.kind == kind for r in ok)
        }
        result.lag_http = summary_ms([lag for _, lag in results.lags])
        result.last_position = self.last_position
        result.error_samples = [r.error for r in records if r.error][:20]
        buckets: dict[int, list[float]] = {}
        for r in ok:
            buckets.setdefault(int(r.end - self.epoch), []).append(r.end - r.intended)
        for second in sorted(buckets):
            values = sorted(buckets[second])
            result.timeline.append(
                (
                    float(second),
                    len(values),
                    round(1000 * percentile(values, 50), 2),
                    round(1000 * percentile(values, 99), 2),
                )
            )
        result.lag_timeline = [(round(at - self.epoch, 3), round(1000 * lag, 2)) for at, lag in results.lags]

    # -- the db lag --------------------------------------------------------------------

    async def _poll_applied(self, pending: dict[int, float], out: list[float], stop: asyncio.Event) -> None:
        conn = await asyncpg.connect(self.database_url)
        query = f'SELECT position FROM "{self.read_schema}".applied WHERE position = ANY($1::bigint[])'
        give_up = None
        try:
            while pending or not stop.is_set():
                if stop.is_set():
                    give_up = give_up or time.perf_counter() + 30
                    if time.perf_counter() > give_up:
                        return
                if pending:
                    rows = await conn.fetch(query, list(pending))
                    now = time.perf_counter()
                    for row in rows:
                        out.append(now - pending.pop(row["position"]))
                await asyncio.sleep(0.005)
        finally:
            await conn.close()

    async def _ticker(self, name: str, results: Results, rate: float | None, stop: asyncio.Event) -> None:
        begun = time.perf_counter()
        seen = 0
        last: Snapshot = self.meter.snapshot(begun)
        while not stop.is_set():
            await asyncio.sleep(2.0)
            now = time.perf_counter()
            results.read()
            records: list[Record] = results.records
            window = records[seen:]
            seen = len(records)
            ok = sorted(r.end - r.intended for r in window if 200 <= r.status < 300)
            errors = sum(1 for r in records if not 200 <= r.status < 300)
            snap = self.meter.snapshot(now)
            cpu = usage(last, snap)
            last = snap
            busiest = ", ".join(
                f"{k} {v:.0f}%"
                for k, v in sorted(cpu.items(), key=lambda kv: -kv[1])
                if k not in ("machine", "cores") and v >= 5
            )
            say(
                f"  {name}: {now - begun:5.1f}s  done {len(records):,}  errors {errors}"
                f"  last 2s {len(ok) / 2:,.0f}/s p50 {1000 * percentile(ok, 50):.1f} ms"
                f" p99 {1000 * percentile(ok, 99):.1f} ms  cpu[{busiest}; machine {cpu.get('machine', 0):.0f}%]"
                + (f"  target {rate:g}/s" if rate else "")
            )

    async def wait_applied(self, position: int, timeout: float = 300) -> float:
        """Seconds until the projections applied `position` (read-your-writes on the API)."""
        assert self._reader is not None
        headers = {"Authorization": f"Bearer {self.tokens[0]}"}
        started = time.perf_counter()
        while time.perf_counter() - started < timeout:
            try:
                response = await self._reader.get(
                    "/v1/agreements", params={"min_position": position, "limit": 1}, headers=headers
                )
                if response.status_code == 200:
                    return time.perf_counter() - started
            except httpx.HTTPError:
                await asyncio.sleep(0.5)
        raise TimeoutError(f"projections did not apply position {position} in {timeout}s")
