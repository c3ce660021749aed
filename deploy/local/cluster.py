"""The local cluster: every part replicated, on this one machine, from the project's own files.

- Kafka: three KRaft nodes (deploy/local/kafka_cluster.py); the events topic has replication
  factor 3, `min.insync.replicas=2` and no unclean leader election; the relay's producer is
  transactional, hence idempotent with `acks=all`.
- PostgreSQL: a primary and a synchronous streaming standby (deploy/local/postgres_cluster.py);
  every service connects with the multi-host URL and `target_session_attrs=read-write`.
- Two registries and two projections APIs, each pair behind HAProxy (deploy/local/haproxy.py),
  which checks `/readyz`; two relays (one leads, by an advisory lock; the other waits) and two
  projection workers in one consumer group.
- Two officials' consoles behind HAProxy too, with one session secret: a session cookie signed
  by either is read by the other, and by either after a restart (docs/adr/0017). They reach the
  registry and the projections through those services' HAProxy fronts, as any client does.

`make cluster` runs it with the demo data (`coordreg-stack cluster`); tests/cluster starts it on
free ports and breaks its parts.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from coordreg_contracts.topic import TOPIC

from deploy.local.db_accounts import DatabaseAccounts, load_passwords, prepare_database
from deploy.local.haproxy import Frontend, LocalHaproxy
from deploy.local.kafka_cluster import LocalKafkaCluster
from deploy.local.kafka_principals import PROJECTIONS, RELAY, provision
from deploy.local.postgres_cluster import LocalPostgresPair
from deploy.local.processes import die_with_parent, free_ports
from services.common.kafka_admin import CLUSTER_REPLICATION, CLUSTER_TOPIC_CONFIG

HOST = "127.0.0.1"
SERVICES = {
    "registry": "services.registry.entrypoints.main",
    "relay": "services.registry.entrypoints.relay_main",
    "projections": "services.projections.entrypoints.main",
    "worker": "services.projections.entrypoints.worker",
    "console": "services.console",
}


@dataclass(frozen=True)
class ClusterPorts:
    registry: int  # the load balancer's, for clients
    projections: int
    registries: tuple[int, int]
    projections_apis: tuple[int, int]
    postgres: tuple[int, int]  # primary, standby
    kafka: tuple[int, ...]  # each node's client port, then controller port
    relay_metrics: tuple[int, int]
    worker_metrics: tuple[int, int]
    console: int  # the load balancer's, for people's browsers
    consoles: tuple[int, int]

    @classmethod
    def fixed(cls) -> ClusterPorts:
        """`make cluster`'s: clients find it where `make run`'s would be."""
        return cls(
            8000,
            8001,
            (8010, 8011),
            (8020, 8021),
            (5432, 5433),
            (9092, 9093, 9094, 9095, 9096, 9097),
            (8030, 8031),
            (8040, 8041),
            8005,
            (8050, 8051),
        )

    @classmethod
    def free(cls) -> ClusterPorts:
        ports = free_ports(21)  # distinct: 21 separate free_port() calls could give one port twice
        return cls(
            ports[0],
            ports[1],
            (ports[2], ports[3]),
            (ports[4], ports[5]),
            (ports[6], ports[7]),
            tuple(ports[8:14]),
            (ports[14], ports[15]),
            (ports[16], ports[17]),
            ports[18],
            (ports[19], ports[20]),
        )

    def all(self) -> list[tuple[int, str]]:
        """Every port this cluster listens on, with what listens there."""
        named = [(self.registry, "registry load balancer"), (self.projections, "projections load balancer")]
        named += [(self.console, "console load balancer")]
        named += [(port, f"registry {i}") for i, port in enumerate(self.registries, 1)]
        named += [(port, f"projections {i}") for i, port in enumerate(self.projections_apis, 1)]
        named += [(port, f"console {i}") for i, port in enumerate(self.consoles, 1)]
        named += [(self.postgres[0], "PostgreSQL primary"), (self.postgres[1], "PostgreSQL standby")]
        named += [(port, f"relay {i} metrics") for i, port in enumerate(self.relay_metrics, 1)]
        named += [(port, f"worker {i} metrics") for i, port in enumerate(self.worker_metrics, 1)]
        named += [
            (port, f"Kafka node {i // 2 + 1} {'controller' if i % 2 else 'broker'}")
            for i, port in enumerate(self.kafka)
        ]
        return named


@dataclass
class Process:
    name: str
    module: str
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None
    _handle: IO[bytes] | None = None

    def start(self) -> Process:
        self._handle = self.log.open("ab")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", self.module],
            env={**os.environ, **self.env},
            stdout=self._handle,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,  # one call, no threads yet
        )
        return self

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.alive:
            assert self.popen is not None
            self.popen.kill()
            self.popen.wait()

    def stop(self) -> None:
        if self.alive:
            assert self.popen is not None
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._handle is not None:
            self._handle.close()
            self._handle = None


# The database roles each kind of process signs in as (the API instances run no consumer; the
# consoles use no database).
COMPONENTS = {
    "registry": ("registry",),
    "relay": ("relay",),
    "projections": ("query",),
    "worker": ("worker",),
}


@dataclass
class LocalCluster:
    data_dir: Path
    cache_root: Path
    ports: ClusterPorts
    topic: str = TOPIC
    consumer_group: str = "projections"
    processes: dict[str, Process] = field(default_factory=dict)
    accounts: DatabaseAccounts | None = None
    # The consoles' one CONSOLE_SESSION_SECRET, for this cluster's life: both read every session,
    # and so does a console started again. A new cluster run signs everyone out.
    console_session_secret: str = field(default_factory=lambda: secrets.token_urlsafe(48), repr=False)

    def __post_init__(self) -> None:
        self.postgres = LocalPostgresPair(self.data_dir / "postgres", self.ports.postgres)
        self.kafka = LocalKafkaCluster(self.data_dir / "kafka", self.cache_root, ports=list(self.ports.kafka))
        self.balancer = LocalHaproxy(
            self.data_dir / "haproxy",
            self.cache_root,
            [
                Frontend("registry", self.ports.registry, self.ports.registries),
                Frontend("projections", self.ports.projections, self.ports.projections_apis),
                Frontend("console", self.ports.console, self.ports.consoles, check_path="/healthz"),
            ],
        )
        self.logs = self.data_dir / "logs"

    @property
    def database_url(self) -> str:
        return self.postgres.url

    @property
    def bootstrap(self) -> str:
        return self.kafka.bootstrap_servers

    @property
    def registry_url(self) -> str:
        return f"http://{HOST}:{self.ports.registry}"

    @property
    def projections_url(self) -> str:
        return f"http://{HOST}:{self.ports.projections}"

    @property
    def console_url(self) -> str:
        return f"http://{HOST}:{self.ports.console}"

    def start_servers(self) -> None:
        """PostgreSQL, Kafka and the topic (the services come with start_services)."""
        self.postgres.start()
        # Each service signs in as its own role, built and granted by the migrator first, as in
        # `make run` and Kubernetes (docs/adr/0002-database-roles.md); `database_url` (the
        # administrator's) stays the operator's and the tests' own view.
        self.accounts = asyncio.run(
            prepare_database(self.database_url, load_passwords(self.data_dir / "postgres-accounts.json"))
        )
        self.kafka.start()
        asyncio.run(
            # The checkpoints topic too, with the events topic's replication (three).
            provision(
                self.kafka.admin, self.topic, replication=CLUSTER_REPLICATION, config=CLUSTER_TOPIC_CONFIG
            )
        )

    def console_env(self, index: int) -> dict[str, str]:
        """A console's: no database, no broker; the services through their load balancers."""
        return {
            "CONSOLE_PORT": str(self.ports.consoles[index - 1]),
            "CONSOLE_REGISTRY_URL": self.registry_url,
            "CONSOLE_PROJECTIONS_URL": self.projections_url,
            "CONSOLE_SESSION_SECRET": self.console_session_secret,
        }

    def service_env(self, name: str) -> dict[str, str]:
        if self.accounts is None:
            raise RuntimeError("start_servers() first: the services' database roles are made there")
        # application_name: who holds the relay's lock, in pg_stat_activity.
        roles = self.accounts.env(*COMPONENTS[name.rpartition("-")[0]])
        return {
            **{variable: f"{url}&application_name={name}" for variable, url in roles.items()},
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "REGISTRY_TOPIC": self.topic,
            "PROJECTIONS_TOPIC": self.topic,
            "PROJECTIONS_CONSUMER_GROUP": self.consumer_group,
        }

    def start_service(self, name: str) -> Process:
        """`registry-1`, `relay-2`, `projections-1`, `worker-2`, `console-1`, ... (started again if
        it runs)."""
        kind, _, index = name.rpartition("-")
        env = self.console_env(int(index)) if kind == "console" else self.service_env(name)
        if kind == "registry":
            env["REGISTRY_PORT"] = str(self.ports.registries[int(index) - 1])
        elif kind == "projections":
            env["PROJECTIONS_PORT"] = str(self.ports.projections_apis[int(index) - 1])
            # The API instances serve queries only; the two workers are the consumer group.
            env["PROJECTIONS_RUN_CONSUMER"] = "false"
        elif kind == "relay":
            env["REGISTRY_RELAY_METRICS_PORT"] = str(self.ports.relay_metrics[int(index) - 1])
            # Each job as its own Kafka principal; the registry and the query APIs need none.
            env |= self.kafka.connection(RELAY).env("REGISTRY_")
        elif kind == "worker":
            env["PROJECTIONS_WORKER_METRICS_PORT"] = str(self.ports.worker_metrics[int(index) - 1])
            env |= self.kafka.connection(PROJECTIONS).env("PROJECTIONS_")
        if (old := self.processes.get(name)) is not None:
            old.stop()
        self.logs.mkdir(parents=True, exist_ok=True)
        process = Process(name, SERVICES[kind], env, self.logs / f"{name}.log").start()
        self.processes[name] = process
        return process

    def start_services(self) -> None:
        for kind in ("registry", "projections", "relay", "worker", "console"):
            for index in (1, 2):
                self.start_service(f"{kind}-{index}")
        self.balancer.start()

    def start(self) -> None:
        self.start_servers()
        self.start_services()

    def stop(self) -> None:
        self.balancer.stop()
        for process in self.processes.values():
            if process.alive:
                assert process.popen is not None
                process.popen.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            process.stop()
        self.kafka.stop()
        self.postgres.stop()

    def wait_ready(self, timeout: float = 90) -> None:
        """Until every load balancer answers its services' check (a backend of each is up)."""
        import httpx

        deadline = time.monotonic() + timeout
        for url in (
            f"{self.registry_url}/readyz",
            f"{self.projections_url}/readyz",
            f"{self.console_url}/healthz",
        ):
            while True:
                try:
                    if httpx.get(url, timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                for process in self.processes.values():
                    if not process.alive:
                        raise RuntimeError(f"{process.name} exited; see {process.log}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{url} not ready after {timeout:.0f} s")
                time.sleep(0.2)
