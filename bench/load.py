"""Figures 1 and 2: commands over HTTP at fixed rates (open loop) and flat out (closed loop),
and the projection lag seen after a command's 2xx.

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
import importlib.util
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx

from bench.cpu import CpuMeter, Snapshot, per_unit_ms, usage
from bench.stack import say
from bench.stats import percentile, summary_ms
from bench.workload import Lives

KINDS = ("sign", "report", "amend", "close")

# httpcore asks "which async library?" several times per request with `import sniffio`; when
# sniffio is not installed, every one of those imports searches sys.path on disk again, which
# made the load generator the busiest process of the run. A None entry makes the failed
# import instant; httpcore then assumes asyncio, which is what runs here.
if importlib.util.find_spec("sniffio") is None:
    sys.modules["sniffio"] = None  # type: ignore[assignment]


@dataclass
class Record:
    intended: float
    start: float
    end: float
    kind: str
    status: int  # 0: no HTTP answer (connection error, timeout)


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
        self.headers = [{"Authorization": f"Bearer {t}", "Content-Type": "application/json"} for t in tokens]
        self.lives = [Lives(i, self.clients, tag) for i in range(self.clients)]
        self.meter = meter
        self.epoch = epoch
        self.read_schema = read_schema
        self.last_position = 0
        self.error_samples: list[str] = []
        self._http: list[httpx.AsyncClient] = []
        self._reader: httpx.AsyncClient | None = None

    async def __aenter__(self) -> Load:
        # One client object (one keep-alive connection) per simulated client: httpx's pool scans
        # every connection on each request, which costs the load generator more CPU than the
        # system under test spends once the pool is large.
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        self._http = [
            httpx.AsyncClient(base_url=self.registry_url, limits=limits, timeout=30)
            for _ in range(self.clients)
        ]
        self._reader = httpx.AsyncClient(
            base_url=self.projections_url, limits=httpx.Limits(max_connections=64), timeout=30
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._reader is not None
        for client in self._http:
            await client.aclose()
        await self._reader.aclose()

    # -- one command -------------------------------------------------------------------

    async def _one(
        self, client: int, intended: float, records: list[Record], probe: Callable[..., None]
    ) -> None:
        lives = self.lives[client]
        agreement = lives.next()
        request = lives.request(agreement)
        start = time.perf_counter()
        status = 0
        body: dict[str, Any] | None = None
        try:
            response = await self._http[client].post(
                request.path, content=request.body, headers=self.headers[client]
            )
            status = response.status_code
            if 200 <= status < 300:
                body = response.json()
            elif len(self.error_samples) < 20:
                self.error_samples.append(f"{request.kind} -> {status}: {response.text[:300]}")
        except httpx.HTTPError as exc:
            status = 0
            if len(self.error_samples) < 20:
                self.error_samples.append(f"{request.kind} -> no answer: {type(exc).__name__}")
        except asyncio.CancelledError:
            # Cut off at the end of a phase: the server may still have done it, so this
            # agreement's next step is unknown. Start a new life instead of guessing.
            agreement.step = len(agreement.life)
            raise
        end = time.perf_counter()
        records.append(Record(intended, start, end, request.kind, status))
        if body is not None:
            lives.advance(agreement, body["agreement_id"])
            position = int(body["position"])
            self.last_position = max(self.last_position, position)
            probe(body["agreement_id"], position, end)
        else:
            # The agreement's state is unknown after an error: start a new life instead.
            agreement.step = len(agreement.life)

    # -- phases ------------------------------------------------------------------------

    async def open_loop(self, name: str, rate: float, duration: float, lag_every: int = 0) -> PhaseResult:
        slots: asyncio.Queue[float | None] = asyncio.Queue()
        records: list[Record] = []

        async def dispatch() -> None:
            begin = time.perf_counter()
            for k in range(int(rate * duration)):
                due = begin + k / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                slots.put_nowait(due)

        async def worker(client: int, probe: Callable[..., None]) -> None:
            while (intended := await slots.get()) is not None:
                await self._one(client, intended, records, probe)

        result = PhaseResult(name, "open", self.clients, duration, target_rate=rate)

        async def body(probe: Callable[..., None]) -> None:
            workers = [asyncio.create_task(worker(i, probe)) for i in range(self.clients)]
            await dispatch()
            for _ in workers:
                slots.put_nowait(None)
            # The backlog may take a while to drain when the rate is out of reach; past
            # this it is cut off and counted as not sent.
            done, pending = await asyncio.wait(workers, timeout=max(10.0, duration))
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for task in done:
                task.result()
            result.not_sent = sum(1 for _ in range(slots.qsize()) if slots.get_nowait() is not None)

        await self._run(result, records, body, lag_every, rate)
        return result

    async def closed_loop(self, name: str, duration: float, lag_every: int = 0) -> PhaseResult:
        records: list[Record] = []
        result = PhaseResult(name, "closed", self.clients, duration)

        async def body(probe: Callable[..., None]) -> None:
            end = time.perf_counter() + duration

            async def worker(client: int) -> None:
                while (now := time.perf_counter()) < end:
                    await self._one(client, now, records, probe)

            await asyncio.gather(*(worker(i) for i in range(self.clients)))

        await self._run(result, records, body, lag_every, None)
        return result

    async def _run(
        self,
        result: PhaseResult,
        records: list[Record],
        body: Callable[[Callable[..., None]], Any],
        lag_every: int,
        rate: float | None,
    ) -> None:
        lag_http: list[tuple[float, float]] = []
        lag_db: list[float] = []
        pending: dict[int, float] = {}
        probes: set[asyncio.Task[None]] = set()
        counter = {"ok": 0}
        missing = {"count": 0}

        def probe(agreement_id: str, position: int, ok_at: float) -> None:
            counter["ok"] += 1
            if lag_every and counter["ok"] % lag_every == 0:
                pending[position] = ok_at
                task = asyncio.create_task(self._probe_http(agreement_id, position, ok_at, lag_http, missing))
                probes.add(task)
                task.add_done_callback(probes.discard)

        stop = asyncio.Event()
        poller = asyncio.create_task(self._poll_applied(pending, lag_db, stop)) if lag_every else None
        ticker = asyncio.create_task(self._ticker(result.name, records, rate, stop))
        before = self.meter.snapshot(time.perf_counter())
        begun = time.perf_counter()
        try:
            await body(probe)
        finally:
            after = self.meter.snapshot(time.perf_counter())
            if probes:
                await asyncio.wait(probes, timeout=35)
            stop.set()
            if poller is not None:
                await poller
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        result.lag_missing = missing["count"] + len(pending)
        result.cpu = usage(before, after)
        self._summarise(result, records, begun, lag_http, lag_db)
        result.cpu_ms_per_command = per_unit_ms(result.cpu, after.at - before.at, result.ok)

    def _summarise(
        self,
        result: PhaseResult,
        records: list[Record],
        begun: float,
        lag_http: list[tuple[float, float]],
        lag_db: list[float],
    ) -> None:
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
        result.lag_http = summary_ms([lag for _, lag in lag_http])
        result.lag_db = summary_ms(lag_db)
        result.last_position = self.last_position
        result.error_samples = list(self.error_samples)
        self.error_samples.clear()
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
        result.lag_timeline = [(round(at - self.epoch, 3), round(1000 * lag, 2)) for at, lag in lag_http]

    # -- lag probes --------------------------------------------------------------------

    async def _probe_http(
        self,
        agreement_id: str,
        position: int,
        ok_at: float,
        out: list[tuple[float, float]],
        missing: dict[str, int],
    ) -> None:
        assert self._reader is not None
        headers = self.headers[0]
        for _ in range(6):  # the server waits up to 5 s per request, then answers 503
            try:
                response = await self._reader.get(
                    f"/v1/agreements/{agreement_id}", params={"min_position": position}, headers=headers
                )
            except httpx.HTTPError:
                continue
            if response.status_code == 200:
                out.append((ok_at, time.perf_counter() - ok_at))
                return
            if response.status_code != 503:
                break
        missing["count"] += 1

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

    async def _ticker(
        self, name: str, records: list[Record], rate: float | None, stop: asyncio.Event
    ) -> None:
        begun = time.perf_counter()
        seen = 0
        last: Snapshot = self.meter.snapshot(begun)
        while not stop.is_set():
            await asyncio.sleep(2.0)
            now = time.perf_counter()
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
        started = time.perf_counter()
        while time.perf_counter() - started < timeout:
            try:
                response = await self._reader.get(
                    "/v1/agreements", params={"min_position": position, "limit": 1}, headers=self.headers[0]
                )
                if response.status_code == 200:
                    return time.perf_counter() - started
            except httpx.HTTPError:
                await asyncio.sleep(0.5)
        raise TimeoutError(f"projections did not apply position {position} in {timeout}s")
