"""`make run` on fixed ports, against real sockets, a real PostgreSQL and a real Kafka broker.

The refusal tests run the real command (`coordreg-stack run`) with every port moved to a free
one except the one held here, and with its data dir in a temporary folder: should the check
ever let the run through, it starts nothing in the project's `.local/`. The lock tests hold
`run.lock` as a live run does, or leave a server behind as a killed run does. The data-dir tests
start the servers the way an older `make run` did (free ports, remembered in the data dir),
then on other, given ports, as today's `make run` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from deploy.local.cluster import ClusterPorts
from deploy.local.kafka import TOPIC_CONFIG, LocalKafka, ensure_topic
from deploy.local.postgres import LocalPostgres
from deploy.local.processes import process_alive
from deploy.local.stack import StackSettings, bind_error, env_variable, planned_ports, preflight
from deploy.local.witnesses import STACK_WITNESSES
from services.common.kafka_security import KafkaConnection

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache"
COMMAND = Path(sys.executable).parent / "coordreg-stack"
WHAT = {
    "postgres_port": "PostgreSQL",
    "kafka_port": "Kafka",
    "kafka_controller_port": "Kafka controller",
    "registry_port": "registry",
    "projections_port": "projections",
    "console_port": "console",
    "litewitness_1_port": "witness litewitness-1",
    "litewitness_2_port": "witness litewitness-2",
    "omniwitness_port": "witness omniwitness",
}
PORT_FIELDS = tuple(WHAT)


@contextlib.contextmanager
def listening() -> Iterator[int]:
    """A port on 127.0.0.1 held by a listener, as another server would hold it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def stack_env(local_dir: Path, ports: dict[str, int]) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in {"DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS"}
    }
    env["COORDREG_LOCAL_DIR"] = str(local_dir)
    env.update({env_variable(field): str(port) for field, port in ports.items()})
    return env


def run_stack(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    assert COMMAND.exists(), f"{COMMAND} is installed by `make venv`"
    return subprocess.run(
        [str(COMMAND), "run"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )


def test_every_port_the_run_listens_on_is_checked_and_the_witnesses_clash_with_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each planned port is one of StackSettings' fields, moved by its own variable; the three
    witnesses' defaults (8060-8062) are taken by no other part of `make run`, by neither
    service's metrics listener (8002, 8003), nor by `make cluster`'s fixed ports."""
    for variable in [
        *(env_variable(field) for field in PORT_FIELDS),
        "DATABASE_URL",
        "KAFKA_BOOTSTRAP_SERVERS",
    ]:
        monkeypatch.delenv(variable, raising=False)
    planned = planned_ports(StackSettings())
    assert {port.variable for port in planned} == {env_variable(field) for field in PORT_FIELDS}
    assert {port.what for port in planned} == set(WHAT.values())
    witnesses = {port.port for port in planned if port.what.startswith("witness ")}
    assert witnesses == {8060, 8061, 8062} and len(witnesses) == len(STACK_WITNESSES)
    others = {port.port for port in planned if not port.what.startswith("witness ")}
    assert not witnesses & (others | {8002, 8003} | {port for port, _ in ClusterPorts.fixed().all()})
    assert len({port.port for port in planned}) == len(planned)


def test_a_listener_makes_the_port_unusable_and_closing_it_frees_it() -> None:
    with listening() as port:
        error = bind_error(port)
        assert error is not None and error.errno == errno.EADDRINUSE
    assert bind_error(port) is None


def test_a_connection_left_in_time_wait_does_not_count_as_busy() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        # As PostgreSQL, the JVM and uvicorn do; Linux lets a port in TIME_WAIT be bound again
        # only when both the old socket and the new one set it.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = int(listener.getsockname()[1])
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = listener.accept()
        # The side that closes first keeps the port in TIME_WAIT, as a server does after a run.
        accepted.close()
        client.close()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as plain, pytest.raises(OSError) as caught:
        plain.bind(("127.0.0.1", port))
    assert caught.value.errno == errno.EADDRINUSE, "the premise: TIME_WAIT blocks a plain bind"
    assert bind_error(port) is None


@pytest.mark.parametrize("held", PORT_FIELDS)
def test_run_refuses_a_port_in_use_with_one_line(tmp_path: Path, held: str) -> None:
    local_dir = tmp_path / "local"
    with listening() as busy:
        ports = dict(zip(PORT_FIELDS, free_ports(len(PORT_FIELDS)), strict=True))
        ports[held] = busy
        result = run_stack(stack_env(local_dir, ports))
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"[coordreg] port {busy} ({WHAT[held]}) is in use; set {env_variable(held)} to another port"
    ]
    assert started(local_dir) == [], "nothing may start before the check"


def started(local_dir: Path) -> list[str]:
    """What a run made in its data dir besides its lock file."""
    return sorted(path.name for path in local_dir.iterdir() if path.name != "run.lock")


@contextlib.contextmanager
def live_run(local_dir: Path) -> Iterator[int]:
    """Holds `run.lock` as a running `make run` does; yields the pid it writes there."""
    local_dir.mkdir(parents=True, exist_ok=True)
    with (local_dir / "run.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        yield os.getpid()


def test_run_refuses_a_data_dir_another_run_holds_with_one_line(tmp_path: Path) -> None:
    local_dir = tmp_path / "local"
    ports = dict(zip(PORT_FIELDS, free_ports(len(PORT_FIELDS)), strict=True))
    with live_run(local_dir) as pid:
        result = run_stack(stack_env(local_dir, ports))
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"[coordreg] another `make run` (pid {pid}) is running on {local_dir}; "
        "stop it first, or set COORDREG_LOCAL_DIR to another folder"
    ]
    assert started(local_dir) == []


def test_a_live_runs_server_is_left_alone(tmp_path: Path) -> None:
    local_dir = tmp_path / "local"
    server = LocalPostgres(local_dir / "postgres")
    server.start()
    try:
        ports = dict(zip(PORT_FIELDS, free_ports(len(PORT_FIELDS)), strict=True))
        ports["postgres_port"] = server.port
        with live_run(local_dir) as pid:
            result = run_stack(stack_env(local_dir, ports))
        assert result.returncode == 2, result.stdout + result.stderr
        assert result.stdout == ""
        assert result.stderr.splitlines() == [
            f"[coordreg] another `make run` (pid {pid}) is running on {local_dir}; "
            f"port {server.port} (PostgreSQL) is in use; set COORDREG_POSTGRES_PORT to another port"
        ]
        assert server.pid is not None and process_alive(server.pid)
    finally:
        server.stop()


def test_a_server_a_killed_run_left_behind_is_stopped_before_the_check(tmp_path: Path) -> None:
    local_dir = tmp_path / "local"
    server = LocalPostgres(local_dir / "postgres")
    server.start()
    try:
        leftover = server.pid
        ports = dict(zip(PORT_FIELDS, free_ports(len(PORT_FIELDS)), strict=True))
        ports["postgres_port"] = server.port
        # Its run is gone (nobody holds run.lock); a held registry port stops the new run after the sweep.
        with listening() as busy:
            ports["registry_port"] = busy
            result = run_stack(stack_env(local_dir, ports))
        assert result.returncode == 2, result.stdout + result.stderr
        assert result.stdout.splitlines() == [
            f"[coordreg] stopped the PostgreSQL an earlier run left behind (pid {leftover})"
        ]
        assert result.stderr.splitlines() == [
            f"[coordreg] port {busy} (registry) is in use; set REGISTRY_PORT to another port"
        ]
        assert leftover is not None and not process_alive(leftover)
    finally:
        server.stop()


def test_run_refuses_a_malformed_port_with_one_line(tmp_path: Path) -> None:
    env = stack_env(tmp_path / "local", {})
    env["COORDREG_KAFKA_PORT"] = "ninety"
    result = run_stack(env)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("[coordreg] COORDREG_KAFKA_PORT: Input should be a valid integer")


def test_a_server_given_from_outside_is_not_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    with listening() as busy:
        ports = dict(zip(PORT_FIELDS, free_ports(len(PORT_FIELDS)), strict=True))
        ports["postgres_port"] = busy
        for field, port in ports.items():
            monkeypatch.setenv(env_variable(field), str(port))
        monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
        monkeypatch.setenv("DATABASE_URL", f"postgresql://postgres@127.0.0.1:{busy}/postgres")
        assert preflight(StackSettings()) is None
        monkeypatch.delenv("DATABASE_URL")
        assert preflight(StackSettings()) == (
            f"port {busy} (PostgreSQL) is in use; set COORDREG_POSTGRES_PORT to another port"
        )


async def test_postgres_data_from_a_free_port_run_starts_on_the_given_port(tmp_path: Path) -> None:
    older = LocalPostgres(tmp_path)
    url = older.start()
    try:
        connection = await asyncpg.connect(url)
        try:
            await connection.execute("CREATE TABLE kept (id int); INSERT INTO kept VALUES (7)")
        finally:
            await connection.close()
    finally:
        older.stop()
    (given,) = free_ports(1)
    assert given != older.port
    newer = LocalPostgres(tmp_path, port=given)
    url = newer.start()
    try:
        assert url == f"postgresql://postgres@127.0.0.1:{given}/postgres"
        assert (tmp_path / "port").read_text() == str(given)
        connection = await asyncpg.connect(url)
        try:
            assert await connection.fetchval("SELECT id FROM kept") == 7
        finally:
            await connection.close()
        # A run that was killed leaves its server behind; the next run stops it before its checks.
        leftover = newer.pid
        assert leftover is not None and bind_error(given) is not None
        assert LocalPostgres(tmp_path, port=given).stop_leftover() == leftover
        assert bind_error(given) is None
    finally:
        newer.stop()


async def list_topics(kafka: KafkaConnection) -> list[str]:
    admin = AIOKafkaAdminClient(**kafka.kwargs())
    await admin.start()
    try:
        topics: list[str] = await admin.list_topics()
        return topics
    finally:
        await admin.close()


async def test_kafka_data_from_a_free_port_run_starts_on_the_given_ports(tmp_path: Path) -> None:
    older = LocalKafka(tmp_path, CACHE)
    bootstrap = await asyncio.to_thread(older.start)
    try:
        await ensure_topic(older.admin, "kept", 2, TOPIC_CONFIG)
    finally:
        await asyncio.to_thread(older.stop)
    port, controller = free_ports(2)
    assert bootstrap != f"127.0.0.1:{port}"
    newer = LocalKafka(tmp_path, CACHE, port=port, controller_port=controller)
    bootstrap = await asyncio.to_thread(newer.start)
    try:
        assert bootstrap == f"127.0.0.1:{port}"
        properties = (tmp_path / "server.properties").read_text()
        assert f"listeners=SASL_SSL://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}\n" in properties
        assert "kept" in await list_topics(newer.admin)
        # A run that was killed leaves its broker behind; the next run stops it before its checks.
        leftover = newer.pid
        assert leftover is not None and bind_error(port) is not None
        stopped = await asyncio.to_thread(LocalKafka(tmp_path, CACHE, port, controller).stop_leftover)
        assert stopped == leftover
        assert bind_error(port) is None and bind_error(controller) is None
        assert not newer.pid_file.exists()
    finally:
        await asyncio.to_thread(newer.stop)
