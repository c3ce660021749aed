"""A real Apache Kafka broker (KRaft, one node, or one node of a cluster: deploy/local/kafka_cluster.py)
for local runs and tests, without Docker.

The jars come from Maven Central through deploy/kafka/pom.xml and run on the machine's Java.
Used only when KAFKA_BOOTSTRAP_SERVERS is not given.

Security (docs/adr/0001): clients connect over SASL_SSL with SCRAM-SHA-512 only, each as its
own principal, held to the ACLs of deploy/local/kafka_principals.py by KRaft's
StandardAuthorizer; the CA, the brokers' certificate and the passwords are minted at the first
start under the data dir's `security/` folder (or the cluster's). The controller listener, on
loopback, is TLS with client certificates: only the brokers' own certificate gets in.

Ports: the ones passed in win (`make run` passes its fixed ones; the KRaft config is
rewritten on every start, and the stored metadata does not depend on the ports); without
them, the ones a data dir was first given (ports.json), else free ones (tests, bench).
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import concurrent.futures
import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from deploy.checksums import ChecksumMismatch, sums_digest, verify_directory
from deploy.local.kafka_principals import ADMIN, BROKER, SUPER_USERS, KafkaSecrets, create_acls, standing_acls
from deploy.local.processes import LocalServer, end_process, free_ports, port_open
from services.common.kafka_admin import TOPIC_CONFIG, ensure_topic
from services.common.kafka_security import KafkaConnection

# Newest Kafka that aiokafka 0.14.0 was proven against (tests/integration/test_kafka_broker.py):
# idempotent producer with acks=all, consumer groups with manual commits, admin create_topics.
KAFKA_VERSION = "4.4.0"

# Unlimited retention: the events topic is a replayable log, not a buffer.

_DEPLOY_KAFKA = Path(__file__).resolve().parent.parent / "kafka"
_POM = _DEPLOY_KAFKA / "pom.xml"
_LOG4J2 = _DEPLOY_KAFKA / "log4j2.properties"
# The SHA-256 of every jar the pom resolves (docs/adr/0006-pinned-downloads.md).
JAR_SUMS = _DEPLOY_KAFKA / "jars.sha256"
_HOST = "127.0.0.1"
T = TypeVar("T")
_ALTERNATIVES = "or set KAFKA_BOOTSTRAP_SERVERS to a running broker, or use `docker compose up`"


class MissingPrerequisite(RuntimeError):
    """Java 17+ or Maven is missing; the message is one line saying what to do."""


def _java_major(java: str) -> int:
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    match = re.search(r'version "([0-9]+)(?:\.([0-9]+))?', out)
    if match is None:
        return 0
    major = int(match.group(1))
    # Java 8 and older report themselves as "1.x".
    return int(match.group(2) or 0) if major == 1 else major


def _require_java() -> str:
    java = shutil.which("java")
    if java is None or _java_major(java) < 17:
        raise MissingPrerequisite(
            f"Kafka {KAFKA_VERSION} needs Java 17 or newer on PATH "
            f"(e.g. `apt-get install openjdk-17-jre-headless`), {_ALTERNATIVES}"
        )
    return java


def _require_mvn() -> str:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise MissingPrerequisite(
            f"fetching Kafka {KAFKA_VERSION}'s jars needs Maven on PATH "
            f"(e.g. `apt-get install maven`), {_ALTERNATIVES}"
        )
    return mvn


def _verified_marker() -> str:
    # The marker says which committed list the jars were checked against: a later start trusts
    # it without hashing 45 jars again, and a changed list makes it check them anew.
    return f"{KAFKA_VERSION}\nverified against jars.sha256 {sums_digest(JAR_SUMS)}\n"


def ensure_jars(cache_root: Path) -> Path:
    """Return `<cache_root>/kafka-<version>/libs`, fetching the jars on the first call.

    Every jar is checked against deploy/kafka/jars.sha256 after the download, and a cache
    fetched before that check existed is checked once on reuse; a mismatch refuses to start
    (ChecksumMismatch names each file)."""
    _require_java()
    home = cache_root / f"kafka-{KAFKA_VERSION}"
    libs = home / "libs"
    complete = home / "download-complete"
    if complete.exists() and complete.read_text() == _verified_marker():
        return libs
    home.mkdir(parents=True, exist_ok=True)
    # Two test sessions may start at once; one downloads, the other waits and reuses.
    with (home / "download.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if complete.exists():
            if complete.read_text() != _verified_marker():
                try:
                    verify_directory(libs, JAR_SUMS)
                except ChecksumMismatch as exc:
                    raise ChecksumMismatch(
                        f"Kafka's cached jars in {libs} are not the pinned ones; delete {home} to "
                        f"fetch them again. {exc}"
                    ) from None
                complete.write_text(_verified_marker())
            return libs
        mvn = _require_mvn()
        # A folder without the marker is an interrupted download: start it over.
        shutil.rmtree(libs, ignore_errors=True)
        result = subprocess.run(
            [
                # -C: Maven also refuses an artifact whose SHA-1 differs from the repository's.
                mvn, "-B", "-q", "-C", "-f", str(_POM), "dependency:copy-dependencies",
                f"-Dkafka.version={KAFKA_VERSION}", "-DincludeScope=runtime", f"-DoutputDirectory={libs}",
            ],
            capture_output=True,
            text=True,
            check=False,
        )  # fmt: skip
        if result.returncode != 0 or not (libs / f"kafka_2.13-{KAFKA_VERSION}.jar").exists():
            tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
            raise RuntimeError(
                f"mvn could not fetch Kafka {KAFKA_VERSION} (exit {result.returncode}):\n{tail}"
            )
        try:
            verify_directory(libs, JAR_SUMS)
        except ChecksumMismatch:
            # Nothing unverified stays behind to be run by a later start.
            shutil.rmtree(libs, ignore_errors=True)
            raise
        complete.write_text(_verified_marker())
    return libs


def new_cluster_id() -> str:
    # Kafka's Uuid text form (URL-safe base64, no padding); Kafka itself never hands out one
    # starting with "-" since it would read as a command-line option. Saves a JVM start.
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


async def _metadata_ok(kafka: KafkaConnection) -> bool:
    admin = AIOKafkaAdminClient(**kafka.kwargs(), request_timeout_ms=5000)
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
        return bool(cluster.get("brokers"))
    except (KafkaError, OSError, TimeoutError):
        return False
    finally:
        await admin.close()


def _in_thread(work: Coroutine[Any, Any, T]) -> T:
    # A fresh event loop in a worker thread, so start() also works when called from async code.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, work).result()


@dataclass(frozen=True)
class Quorum:
    """What the nodes of one cluster share: its id, its controller voters and its replication."""

    cluster_id: str
    voters: str  # "1@127.0.0.1:9093,2@127.0.0.1:9095,..."
    # The replicas of the internal topics (consumer offsets, transaction state) and the
    # fewest of them in sync for a write: acks=all then means on two brokers of three.
    replication: int
    min_insync: int


class LocalKafka(LocalServer):
    """One KRaft broker+controller process whose whole state lives in `data_dir`."""

    def __init__(
        self,
        data_dir: Path,
        cache_root: Path,
        port: int | None = None,
        controller_port: int | None = None,
        *,
        node_id: int = 1,
        secrets: KafkaSecrets | None = None,
    ) -> None:
        self.data_dir = data_dir.resolve()
        # A cluster's nodes share one set (one CA, one password per principal).
        self.secrets = secrets or KafkaSecrets(self.data_dir / "security")
        self.cache_root = cache_root.resolve()
        self.node_id = node_id
        # Set by the cluster before the first start (needs every node's ports); None: alone.
        self.quorum: Quorum | None = None
        self._requested = (port, controller_port)
        self._ports: tuple[int, int] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._console: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def bootstrap_servers(self) -> str:
        return f"{_HOST}:{self._resolve_ports()[0]}"

    def connection(self, principal: str) -> KafkaConnection:
        """How `principal` (deploy/local/kafka_principals.py) reaches this broker."""
        return self.secrets.connection(self.bootstrap_servers, principal)

    @property
    def admin(self) -> KafkaConnection:
        return self.connection(ADMIN)

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "kafka.pid"

    @property
    def log_dir(self) -> Path:
        """Broker logs (server.log) and the JVM's console output (console.log)."""
        return self.data_dir / "logs"

    @property
    def controller_address(self) -> str:
        return f"{_HOST}:{self._resolve_ports()[1]}"

    def _resolve_ports(self) -> tuple[int, int]:
        # Clients and the services' settings hold the bootstrap address, so a restart on the
        # same data dir reuses the ports chosen the first time.
        if self._ports is None:
            saved = self.data_dir / "ports.json"
            stored: dict[str, int] = json.loads(saved.read_text()) if saved.exists() else {}
            fresh = free_ports(2)
            port = self._requested[0] or stored.get("port") or fresh[0]
            controller = self._requested[1] or stored.get("controller_port") or fresh[1]
            self.data_dir.mkdir(parents=True, exist_ok=True)
            saved.write_text(json.dumps({"port": port, "controller_port": controller}) + "\n")
            self._ports = (port, controller)
        return self._ports

    def _write_properties(self) -> Path:
        port, controller = self._resolve_ports()
        quorum = self.quorum or Quorum("", f"{self.node_id}@{_HOST}:{controller}", 1, 1)
        replication, min_insync = str(quorum.replication), str(quorum.min_insync)
        settings = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": quorum.voters,
            # An empty host would bind every interface and advertise the host name.
            "listeners": f"SASL_SSL://{_HOST}:{port},CONTROLLER://{_HOST}:{controller}",
            "advertised.listeners": f"SASL_SSL://{_HOST}:{port}",
            "listener.security.protocol.map": "SASL_SSL:SASL_SSL,CONTROLLER:SSL",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "SASL_SSL",
            # Clients and brokers: SCRAM-SHA-512 over TLS; the credentials are in the metadata
            # (_format_once), the brokers log in as BROKER.
            "sasl.enabled.mechanisms": "SCRAM-SHA-512",
            "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required "
                f'username="{BROKER}" password="{self.secrets.password(BROKER)}";'
            ),
            # The controllers' listener takes only the brokers' certificate (SCRAM credentials
            # live in the metadata the controllers serve, so they cannot guard it); its subject
            # CN=coordreg-broker maps to the principal BROKER.
            "listener.name.controller.ssl.client.auth": "required",
            "ssl.principal.mapping.rules": "RULE:^CN=([^,]+)$/$1/,DEFAULT",
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(self.secrets.broker_keystore),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.secrets.ca_file),
            # Each principal may do only what deploy/local/kafka_principals.py grants it.
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": ";".join(f"User:{name}" for name in SUPER_USERS),
            "allow.everyone.if.no.acl.found": "false",
            "log.dirs": str(self.data_dir / "kraft-logs"),
            "num.partitions": "1",
            # One node: internal topics cannot have more replicas than brokers.
            "offsets.topic.replication.factor": replication,
            # 50 partitions by default: slow to create on first use, pointless on one node.
            "offsets.topic.num.partitions": "6",
            # The relay publishes in transactions: their state log is an internal topic too,
            # with 50 partitions by default (seconds to create on the first transaction).
            "transaction.state.log.replication.factor": replication,
            "transaction.state.log.min.isr": min_insync,
            "transaction.state.log.num.partitions": "6",
            "share.coordinator.state.topic.replication.factor": replication,
            "share.coordinator.state.topic.min.isr": min_insync,
            "min.insync.replicas": min_insync,
            # A replica that fell out of sync never becomes leader: it could lack acked records.
            "unclean.leader.election.enable": "false",
            # A follower that stopped fetching leaves the in-sync set after 5 s instead of 30:
            # acks=all writes wait for it until then.
            "replica.lag.time.max.ms": "5000",
            # After a crash (kill()) the restarted broker cannot register until the dead
            # incarnation's session expires: 9 s by default, about 3 s with these.
            "broker.heartbeat.interval.ms": "500",
            "broker.session.timeout.ms": "3000",
            # Tests join consumer groups often; the default 3 s delay per join adds up.
            "group.initial.rebalance.delay.ms": "0",
            # The project creates its topics explicitly; a typo must not invent a topic.
            "auto.create.topics.enable": "false",
        }
        path = self.data_dir / "server.properties"
        # It holds the brokers' password: readable by this user only.
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
        return path

    def _jvm_flags(self, libs: Path) -> list[str]:
        return [
            f"-Dlog4j2.configurationFile={_LOG4J2}",
            f"-Dkafka.logs.dir={self.log_dir}",
            "-cp",
            f"{libs}/*",
        ]

    def _format_once(self, java: str, libs: Path, properties: Path) -> None:
        formatted_with_scram = self.data_dir / "scram-formatted"
        if (self.data_dir / "kraft-logs" / "meta.properties").exists():
            if not formatted_with_scram.exists():
                # SCRAM credentials enter the metadata only when the storage is formatted.
                raise RuntimeError(
                    f"{self.data_dir} holds a broker formatted before Kafka authentication "
                    "(docs/adr/0001): stop it and remove that folder, then start again"
                )
            return
        command = [java, *self._jvm_flags(libs), "kafka.tools.StorageTool", "format"]
        cluster_id = self.quorum.cluster_id if self.quorum is not None else new_cluster_id()
        command += ["-t", cluster_id, "-c", str(properties), *self.secrets.scram_arguments()]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"formatting Kafka storage failed:\n{result.stdout}{result.stderr}")
        formatted_with_scram.write_text("SCRAM-SHA-512\n")

    def _log_tail(self, lines: int = 20) -> str:
        parts = []
        for name in ("console.log", "server.log"):
            path = self.log_dir / name
            if path.exists():
                # Stack frames are indented; the headlines and "Caused by:" lines say what went wrong.
                text = [
                    line for line in path.read_text(errors="replace").splitlines() if line[:1] not in "\t "
                ]
                if text:
                    parts.append(f"--- {path} ---\n" + "\n".join(text[-lines:]))
        return "\n".join(parts)

    def stop_leftover(self, timeout: float = 20) -> int | None:
        """Stop a broker that an earlier, killed process left running on this data dir; its pid.

        Only for a caller that knows no live process owns that broker (`make run` holds a lock).
        """
        if self._process is not None:
            return None
        try:
            pid = int(self.pid_file.read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            self.pid_file.unlink(missing_ok=True)
            return None
        # The pid may have been reused since: only a broker started on this very config is ours.
        if b"kafka.Kafka" not in cmdline or str(self.data_dir / "server.properties").encode() not in cmdline:
            self.pid_file.unlink(missing_ok=True)
            return None
        # The broker leads its own session (start_new_session), so its group id is its pid.
        end_process(pid, (signal.SIGTERM, signal.SIGKILL), os.killpg, timeout)
        self.pid_file.unlink(missing_ok=True)
        return pid

    # A first start (JVM, TLS, the metadata's SCRAM credentials) took over 60 s on a machine
    # shared by several test runs: the bound is only for a broker that never comes up.
    def start(self, timeout: float = 180) -> str:
        """Start the broker (formatting a new data dir first) and return its bootstrap address."""
        if self.launch():
            self.wait_ready(timeout)
            if self.quorum is None:  # a cluster grants once all its brokers are up
                _in_thread(create_acls(self.admin, standing_acls()))
        return self.bootstrap_servers

    def launch(self) -> bool:
        """Start the process without waiting for it (a cluster's nodes wait for each other's
        votes); False if it already runs."""
        if self._process is not None and self._process.poll() is None:
            return False
        if self._process is not None:  # died on its own since the last start()
            self._release()
        java = _require_java()
        libs = ensure_jars(self.cache_root)
        self.secrets.ensure()
        properties = self._write_properties()
        self._format_once(java, libs, properties)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._console = (self.log_dir / "console.log").open("ab")
        command = [java, "-Xms256m", "-Xmx1g", *self._jvm_flags(libs), "kafka.Kafka", str(properties)]
        # Own session: a Ctrl-C meant for the caller does not kill the broker mid-test.
        self._process = subprocess.Popen(
            command,
            cwd=self.data_dir,
            stdin=subprocess.DEVNULL,
            stdout=self._console,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid_file.write_text(f"{self._process.pid}\n")
        atexit.register(self.stop)
        return True

    def wait_ready(self, timeout: float = 180) -> None:
        """Until this broker answers metadata requests; raises (and stops it) if it does not."""
        deadline = time.monotonic() + timeout
        port = self._resolve_ports()[0]
        while True:
            if self._process is None:
                raise RuntimeError("Kafka is not running")
            if self._process.poll() is not None:
                code = self._process.returncode
                self._release()
                raise RuntimeError(f"Kafka exited with code {code} while starting:\n{self._log_tail()}")
            if port_open(port) and _in_thread(_metadata_ok(self.admin)):
                return
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"Kafka not ready after {timeout:.0f} s:\n{self._log_tail()}")
            time.sleep(0.2)

    def _signal(self, signum: int) -> None:
        if self._process is not None and self._process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signum)

    def _release(self) -> None:
        atexit.unregister(self.stop)
        self._process = None
        self.pid_file.unlink(missing_ok=True)
        if self._console is not None:
            self._console.close()
            self._console = None

    def stop(self) -> None:
        """Shut down cleanly (SIGTERM, up to 20 s), then SIGKILL if it still runs."""
        if self._process is None:
            return
        self._signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self._process.wait()
        self._release()

    def pause(self) -> None:
        """SIGSTOP: the broker neither answers nor sends anything, as if cut off from the network,
        until resume()."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL, as a crash would: the next start() recovers the logs."""
        if self._process is None:
            return
        self._signal(signal.SIGKILL)
        self._process.wait()
        self._release()


__all__ = [
    "KAFKA_VERSION",
    "TOPIC_CONFIG",
    "LocalKafka",
    "MissingPrerequisite",
    "Quorum",
    "ensure_jars",
    "ensure_topic",
]
