"""Real processes to kill, real servers to stop, and the checks every fault scenario ends with."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from coordreg_contracts.commands import ReportProgress, SignAgreement
from coordreg_contracts.envelope import envelope_hash

from deploy.local.db_accounts import DatabaseAccounts
from services.audit.diff import diff
from services.audit.kafkalog import Record, TopicReader
from services.audit.rebuild import rebuild
from services.audit.settings import AuditSettings
from services.common.kafka_security import KafkaConnection
from services.registry import bootstrap
from services.registry.adapters.relay import RELAY_LOCK
from services.registry.service_layer.binding import Caller
from services.registry.service_layer.bus import CommandContext
from services.registry.service_layer.event_store import StoredEvent
from tests.support.builders import report_body, sign_body
from tests.support.kafka import Brokers

ROOT = Path(__file__).resolve().parents[2]
SCALE = float(os.environ.get("FAULTS_SCALE", "1"))
CTX = CommandContext(Caller.in_process("fault-suite"), correlation_id="faults", causation_id="faults")


def scaled(n: int, minimum: int = 1) -> int:
    return max(minimum, int(n * SCALE))


@dataclass
class Service:
    """A service process started with `python -m module`; `kill()` is a real SIGKILL."""

    name: str
    module: str
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Service:
        handle = self.log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.module],
            env={**os.environ, **self.env},
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
        )
        return self

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def logged(self, event: str) -> list[dict[str, Any]]:
        """The service's JSON log lines with this `event`, oldest first (every run in this log)."""
        lines = self.log.read_text(encoding="utf-8").splitlines() if self.log.exists() else []
        entries = [json.loads(line) for line in lines if line.startswith("{")]
        return [entry for entry in entries if entry.get("event") == event]

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


# The components each service module runs (Env.service_env), for callers that start a module.
COMPONENTS = {
    "services.registry.entrypoints.main": ("registry",),
    "services.registry.entrypoints.relay_main": ("relay",),
    "services.projections.entrypoints.main": ("query", "worker"),
    "services.projections.entrypoints.worker": ("worker",),
}


@dataclass
class Env:
    """One scenario's database, topic and processes."""

    database_url: str  # the administrator's: the scenario's own view
    kafka: Brokers
    topic: str
    logs: Path
    # Each component's own role (the fault suite); None: DATABASE_URL, one role for everything,
    # as a deployment with one server URL has it (tests/integration/test_metrics_exported.py,
    # tests/e2e/test_tracing.py), the services migrating the database themselves.
    accounts: DatabaseAccounts | None = None
    group: str = field(default_factory=lambda: f"projections-{uuid.uuid4().hex[:6]}")
    services: list[Service] = field(default_factory=list)

    def service_env(self, name: str, *components: str) -> dict[str, str]:
        """`components`: the process's (registry, relay, worker, query): its database roles,
        and the Kafka principal of the relay and of the projection worker (the registry and the
        query API need none)."""

        def named(url: str) -> str:
            return f"{url}{'&' if '?' in url else '?'}application_name={name}"

        # Each component as its own database role (docs/adr/0002-database-roles.md).
        if self.accounts is None:
            roles = {"DATABASE_URL": named(self.database_url)}
        else:
            roles = {variable: named(url) for variable, url in self.accounts.env(*components).items()}
        principal: dict[str, str] = {}
        if "relay" in components:
            principal = self.kafka.relay.env("REGISTRY_")
        elif "worker" in components:
            principal = self.kafka.projections.env("PROJECTIONS_")
        return {
            **roles,
            **principal,
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka.bootstrap_servers,
            "REGISTRY_TOPIC": self.topic,
            "PROJECTIONS_TOPIC": self.topic,
            "PROJECTIONS_CONSUMER_GROUP": self.group,
            "REGISTRY_JSON_LOGS": "true",
            "PROJECTIONS_JSON_LOGS": "true",
        }

    def registry(self, name: str, port: int, workers: int = 1) -> Service:
        service = Service(
            name,
            "services.registry.entrypoints.main",
            {
                **self.service_env(name, "registry"),
                "REGISTRY_PORT": str(port),
                "REGISTRY_WORKERS": str(workers),
            },
            self.logs / f"{name}.log",
        )
        self.services.append(service)
        return service.start()

    def relay(self, name: str) -> Service:
        service = Service(
            name,
            "services.registry.entrypoints.relay_main",
            self.service_env(name, "relay"),
            self.logs / f"{name}.log",
        )
        self.services.append(service)
        return service.start()

    def worker(self, name: str) -> Service:
        service = Service(
            name,
            "services.projections.entrypoints.worker",
            self.service_env(name, "worker"),
            self.logs / f"{name}.log",
        )
        self.services.append(service)
        return service.start()

    def stop_all(self) -> None:
        for service in self.services:
            service.stop()


async def relay_leader(pool: asyncpg.Pool) -> str | None:
    """The application_name of the session holding the relay's advisory lock."""
    name: str | None = await pool.fetchval(
        """SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
           WHERE l.locktype = 'advisory' AND l.granted
             AND ((l.classid::bigint << 32) | l.objid::bigint) = $1""",
        RELAY_LOCK,
    )
    return name


# A load that waits for a scenario's faults stops by itself after this long, or after this many
# times its commands, and fails saying so: a broken run ends instead of hanging.
LOAD_CAP_SECONDS = 600.0
LOAD_CAP_FACTOR = 10


class LoadCapReached(AssertionError):
    """The load reached its cap before the faults it was waiting for had happened."""


@dataclass
class Load:
    """Commands decided by the real handler over the real store (no HTTP: the store is the subject).

    `run(commands, until=event)` sends at least `commands` commands and goes on until `event` is
    set: a scenario sets it once the faults it asks for have happened, so they happen under load
    however fast the machine is, not because the load happened to last long enough."""

    pool: asyncpg.Pool
    agreements: list[str] = field(default_factory=list)
    accepted: int = 0
    refused: int = 0
    issued: int = 0
    # Why each refusal happened ("Conflict: ..."), so a failed figure names its cause.
    reasons: Counter[str] = field(default_factory=Counter)

    async def run(
        self,
        commands: int,
        concurrency: int = 16,
        signings_share: float = 0.2,
        *,
        until: asyncio.Event | None = None,
        cap_seconds: float = LOAD_CAP_SECONDS,
    ) -> None:
        registry = bootstrap.on_postgres(self.pool)
        signings = max(1, int(commands * signings_share))
        cap = commands * LOAD_CAP_FACTOR
        deadline = time.monotonic() + cap_seconds
        counter = itertools.count()
        capped = False

        def more(index: int) -> bool:
            nonlocal capped
            if index < commands:
                return True
            if until is None or until.is_set():
                return False
            capped = capped or index >= cap or time.monotonic() > deadline
            return not capped

        async def one(index: int) -> None:
            if index < signings or not self.agreements:
                result = await registry.bus.run(SignAgreement.model_validate(sign_body()), CTX)
                self.agreements.append(result.agreement_id)
            else:
                agreement = random.choice(self.agreements)
                body = report_body(
                    period=random.choice(["2023", "2024", "2025", "2026", "2027"]),
                    completion_percent=random.randint(0, 100),
                )
                await registry.bus.run(ReportProgress.model_validate(body), CTX, agreement)
            self.accepted += 1

        async def worker() -> None:
            while more(index := next(counter)):
                self.issued += 1
                try:
                    await one(index)
                except Exception as exc:
                    self.refused += 1
                    self.reasons[f"{type(exc).__name__}: {exc}"] += 1

        # Signings first, so the reports have agreements to land on.
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        if capped:
            raise LoadCapReached(
                f"the load stopped at its cap ({cap} commands or {cap_seconds:.0f} s) "
                f"after {self.issued} commands, before the scenario's faults had happened"
            )

    async def under_way(self, accepted: int, timeout: float = 180) -> None:
        """Waits until `accepted` commands in all have been accepted: the load is running."""

        started = time.monotonic()
        while self.accepted < accepted:
            if time.monotonic() - started > timeout:
                raise AssertionError(
                    f"the load accepted {self.accepted} commands in {timeout:.0f} s, not {accepted} "
                    f"(refusals: {dict(self.reasons.most_common(3))})"
                )
            await asyncio.sleep(0.02)


async def store_messages(pool: asyncpg.Pool) -> dict[tuple[str, int], bytes]:
    """The exact record value the relay publishes for each stored event."""
    rows = await pool.fetch("SELECT agreement_id, sequence, position, envelope FROM registry.events")
    return {
        (r["agreement_id"], r["sequence"]): StoredEvent(
            r["position"], r["agreement_id"], r["sequence"], r["envelope"]
        ).message()
        for r in rows
    }


async def topic_records(kafka: KafkaConnection, topic: str) -> list[Record]:
    """Every record of the topic, up to the end offsets at the time of the call."""
    async with TopicReader(kafka, topic) as reader:
        ends = await reader.end_offsets()
        return [
            record async for batch in reader.read(await reader.beginning_offsets(), ends) for record in batch
        ]


@dataclass
class TopicCheck:
    store_events: int
    topic_records: int
    lost: int
    duplicates: int
    out_of_order: int
    foreign: int


async def compare_topic_with_store(pool: asyncpg.Pool, kafka: KafkaConnection, topic: str) -> TopicCheck:
    store = await store_messages(pool)
    records = await topic_records(kafka, topic)
    seen: dict[tuple[str, int], int] = defaultdict(int)
    order: dict[str, list[int]] = defaultdict(list)
    foreign = 0
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        envelope = json.loads(record.value)
        key = (envelope["subject"], envelope["sequence"])
        if store.get(key) != record.value:
            foreign += 1
            continue
        if seen[key] == 0:
            order[key[0]].append(key[1])
        seen[key] += 1
    lost = sum(1 for key in store if seen[key] == 0)
    duplicates = sum(count - 1 for count in seen.values() if count > 1)
    out_of_order = sum(1 for sequences in order.values() if sequences != sorted(sequences))
    return TopicCheck(len(store), len(records), lost, duplicates, out_of_order, foreign)


async def wait_until(predicate: Any, timeout: float, interval: float = 0.2) -> float:
    """Waits for an async predicate; returns the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if await predicate():
            return time.monotonic() - started
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


# How long a process (a service, PostgreSQL, a Kafka broker) may take to start answering: on a
# machine of 2 cores running several suites at once (load average 28), a registry's imports alone
# took over 60 s, and a Kafka broker was not ready after 60 s.
STARTED_WITHIN = 180.0


async def registry_ready(client: httpx.AsyncClient) -> bool:
    try:
        return (await client.get("/readyz")).status_code == 200
    except httpx.TransportError:
        return False


async def outbox_empty(pool: asyncpg.Pool) -> bool:
    return int(await pool.fetchval("SELECT count(*) FROM registry.outbox")) == 0


async def projection_caught_up(pool: asyncpg.Pool) -> bool:
    stored = await pool.fetchval("SELECT count(*) FROM registry.events")
    applied = (
        await pool.fetchval("SELECT count(*) FROM projections.applied")
        if await pool.fetchval("SELECT to_regclass('projections.applied') IS NOT NULL")
        else -1
    )
    return bool(stored == applied)


async def broken_chains(pool: asyncpg.Pool) -> list[str]:
    """Streams (agreements and party directory streams) whose stored hash chain does not hold:
    sequences 1..n, positions growing with them, each hash recomputed, each prevhash the hash
    before. The chain alone, independent of what the events mean (the audit tool checks that)."""
    rows = await pool.fetch(
        "SELECT agreement_id, sequence, position, envelope FROM registry.events ORDER BY agreement_id, sequence"
    )
    broken: set[str] = set()
    stream, sequence, position, previous = None, 0, 0, ""
    for row in rows:
        if row["agreement_id"] != stream:
            stream, sequence, position, previous = row["agreement_id"], 0, 0, ""
        doc = json.loads(row["envelope"])
        if (
            row["sequence"] != sequence + 1
            or row["position"] <= position
            or doc["sequence"] != row["sequence"]
            or doc["subject"] != stream
            or doc["prevhash"] != previous
            or doc["hash"] != envelope_hash(doc)
        ):
            broken.add(str(stream))
        sequence, position, previous = row["sequence"], row["position"], doc["hash"]
    return sorted(broken)


async def live_vs_rebuild(database_url: str, pool: asyncpg.Pool) -> int:
    """Read-model rows that differ from a fresh rebuild from the store (the audit tool's)."""
    settings = AuditSettings(database_url=database_url, progress_seconds=0)
    shadow = f"rebuild_{uuid.uuid4().hex[:8]}"
    await rebuild(settings, source="store", schema=shadow)
    report = await diff(settings, shadow)
    return len(report.differences) + len(report.schema_problems)


async def tree_complete(pool: asyncpg.Pool) -> bool:
    """Every stored event is a leaf of the transparency log's tree, and nothing waits to be one."""
    row = await pool.fetchrow(
        """SELECT (SELECT count(*) FROM registry.events) AS events,
                  (SELECT count(*) FROM registry.tree_leaves) AS leaves,
                  (SELECT count(*) FROM registry.tree_pending) AS pending"""
    )
    return row is not None and row["pending"] == 0 and row["events"] == row["leaves"]


async def tree_leaf_problems(pool: asyncpg.Pool) -> int:
    """Leaves whose index is not 0..n-1 in order, or that name no event, or an event twice."""
    return int(
        await pool.fetchval(
            """SELECT (SELECT count(*) FROM (
                           SELECT leaf_index, row_number() OVER (ORDER BY leaf_index) - 1 AS expected
                           FROM registry.tree_leaves) t WHERE leaf_index <> expected)
                    + (SELECT count(*) FROM registry.tree_leaves l
                       WHERE NOT EXISTS (SELECT 1 FROM registry.events e WHERE e.position = l.position))"""
        )
    )
