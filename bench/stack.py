"""The system under test, started the way production runs it: separate processes.

PostgreSQL and Kafka are fresh ones under `.local/bench/` (removed and made again on each
run), unless DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS name running servers. The registry,
the outbox relay and the projections service run as `python -m ...` processes on free
ports, with the services' default settings (development mode, so the development key
signs the bench's tokens).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import asyncpg
from coordreg_contracts.topic import TOPIC

from bench.cpu import CpuMeter
from deploy.local.kafka import KAFKA_VERSION, LocalKafka
from deploy.local.kafka_principals import ADMIN, AUDIT, PROJECTIONS, RELAY, provision
from deploy.local.postgres import LocalPostgres
from deploy.local.processes import free_port
from deploy.local.stack import wait_http
from services.common.kafka_security import KafkaConnection
from services.common.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[1]
BENCH_LOCAL = ROOT / ".local" / "bench"
CACHE = ROOT / ".cache"

SERVICES = {
    "registry": "services.registry.entrypoints.main",
    "relay": "services.registry.entrypoints.relay_main",
    "projections": "services.projections.entrypoints.main",
}

BENCH_TOKEN_TTL = 6 * 3600


def say(message: str) -> None:
    print(f"[bench] {message}", flush=True)


@dataclass
class Stack:
    profile: bool = False
    # The registry's worker processes (REGISTRY_WORKERS); one when profiled under cProfile.
    registry_workers: int = 1
    # Server settings of the fresh PostgreSQL (bench/hot.py loads pg_stat_statements).
    postgres_settings: dict[str, str] = field(default_factory=dict)
    database_url: str = ""
    bootstrap: str = ""
    registry_url: str = ""
    projections_url: str = ""
    postgres: LocalPostgres | None = None
    kafka: LocalKafka | None = None
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    postgres_version: str = ""
    kafka_version: str = ""
    logs: Path = BENCH_LOCAL / "logs"
    _log_files: list[IO[bytes]] = field(default_factory=list)

    def start_infrastructure(self) -> None:
        BENCH_LOCAL.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        self.database_url = os.environ.get("DATABASE_URL", "")
        if not self.database_url:
            shutil.rmtree(BENCH_LOCAL / "postgres", ignore_errors=True)
            started = time.monotonic()
            self.postgres = LocalPostgres(BENCH_LOCAL / "postgres", settings=self.postgres_settings)
            self.database_url = self.postgres.start()
            say(f"fresh PostgreSQL at {self.database_url} in {time.monotonic() - started:.1f}s")
        else:
            say("PostgreSQL from DATABASE_URL")
        self.bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "")
        if not self.bootstrap:
            shutil.rmtree(BENCH_LOCAL / "kafka", ignore_errors=True)
            started = time.monotonic()
            self.kafka = LocalKafka(BENCH_LOCAL / "kafka", CACHE)
            self.bootstrap = self.kafka.start()
            self.kafka_version = KAFKA_VERSION
            say(f"fresh Kafka {KAFKA_VERSION} at {self.bootstrap} in {time.monotonic() - started:.1f}s")
        else:
            self.kafka_version = "external (KAFKA_BOOTSTRAP_SERVERS)"
            say("Kafka from KAFKA_BOOTSTRAP_SERVERS")
        asyncio.run(provision(self.connection(ADMIN), TOPIC, grant=self.kafka is not None))
        self.postgres_version = asyncio.run(_server_version(self.database_url))

    def connection(self, principal: str) -> KafkaConnection:
        """`principal` on the fresh broker; on one of KAFKA_BOOTSTRAP_SERVERS, whoever KAFKA_* name."""
        if self.kafka is not None:
            return self.kafka.connection(principal)
        return ServiceSettings().kafka_connection()

    def principal_env(self, name: str) -> dict[str, str]:
        """Each service as its own Kafka principal (the registry needs none)."""
        if self.kafka is None:
            return {}
        if name == "relay":
            return self.connection(RELAY).env("REGISTRY_")
        if name in ("projections", "worker"):
            return self.connection(PROJECTIONS).env("PROJECTIONS_")
        if name == "audit":
            return self.connection(AUDIT).env("AUDIT_")
        return {}

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "REGISTRY_PORT": self.registry_url.rsplit(":", 1)[-1],
            "PROJECTIONS_PORT": self.projections_url.rsplit(":", 1)[-1],
            "PYTHONPATH": str(ROOT),
            "REGISTRY_WORKERS": str(1 if self.profile else self.registry_workers),
            # The bench's clients hold one token for the whole run (bench/run.py: six hours),
            # longer than the services' default maximum of an hour.
            "REGISTRY_AUTH_MAX_TOKEN_LIFETIME_SECONDS": str(BENCH_TOKEN_TTL),
            "PROJECTIONS_AUTH_MAX_TOKEN_LIFETIME_SECONDS": str(BENCH_TOKEN_TTL),
        }

    def start_service(self, name: str) -> None:
        if not self.registry_url:
            self.registry_url = f"http://127.0.0.1:{free_port()}"
            self.projections_url = f"http://127.0.0.1:{free_port()}"
        log = (self.logs / f"{name}.log").open("ab")
        self._log_files.append(log)
        if self.profile and name == "registry":
            command = [
                sys.executable,
                "-m",
                "bench.profiled",
                str(BENCH_LOCAL / "registry.prof"),
                SERVICES[name],
            ]
        else:
            command = [sys.executable, "-m", SERVICES[name]]
        self.processes[name] = subprocess.Popen(
            command,
            env={**self.env(), **self.principal_env(name)},
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def start_services(self, names: tuple[str, ...] = tuple(SERVICES)) -> None:
        for name in names:
            self.start_service(name)
        for name in names:
            if name == "registry":
                self._wait_ready(f"{self.registry_url}/readyz", name)
            elif name == "projections":
                self._wait_ready(f"{self.projections_url}/readyz", name)

    def _wait_ready(self, url: str, name: str) -> None:
        wait_http(url, self.processes[name])

    def pid(self, name: str) -> int | None:
        process = self.processes.get(name)
        return process.pid if process is not None and process.poll() is None else None

    def watch(self, meter: CpuMeter, client: int) -> None:
        """Point `meter` at the running processes: the bench client, each service (the registry
        with its worker processes), Kafka, and PostgreSQL with its backends."""
        meter.single = {"bench client": client}
        meter.trees = {}
        for name in ("relay", "projections"):
            pid = self.pid(name)
            if pid is not None:
                meter.single[name] = pid
        registry = self.pid("registry")
        if registry is not None:
            # With several workers the registry is a supervisor and its worker processes.
            meter.trees["registry"] = registry
        if self.kafka is not None and self.kafka.pid is not None:
            meter.single["kafka"] = self.kafka.pid
        if self.postgres is not None and self.postgres.pid is not None:
            meter.trees["postgres"] = self.postgres.pid

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}; see {self.logs / name}.log")

    def stop_services(self, names: tuple[str, ...] | None = None) -> None:
        chosen = [n for n in (names or tuple(self.processes)) if n in self.processes]
        for name in chosen:
            if self.processes[name].poll() is None:
                self.processes[name].send_signal(signal.SIGTERM)
        for name in chosen:
            process = self.processes.pop(name)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def stop(self) -> None:
        self.stop_services()
        for log in self._log_files:
            log.close()
        if self.kafka is not None:
            self.kafka.stop()
        if self.postgres is not None:
            self.postgres.stop()


async def _server_version(dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        return str(await conn.fetchval("SELECT current_setting('server_version')"))
    finally:
        await conn.close()
