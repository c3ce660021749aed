"""Whether a process that is not our child still runs (LocalPostgres and LocalKafka leftovers),
and what every local server shares."""

from __future__ import annotations

import contextlib
import os
import random
import socket
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self


class LocalServer:
    """A local server (PostgreSQL, Kafka, HAProxy, or a group of them): `with` starts and stops it."""

    def start(self) -> Any:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, under another user
        return True
    # A zombie has exited; only a wait() by its parent is missing (init in a container may never call it).
    with contextlib.suppress(OSError, IndexError):
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent() -> None:
    """For `preexec_fn`: the child gets SIGTERM when the process that started it dies, even by
    `kill -9`, so a killed `make run` leaves no service holding its ports. Linux only; elsewhere
    a no-op (the next run then reports the port in use)."""
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def end_process(pid: int, signals: tuple[int, ...], send: Callable[[int, int], None], timeout: float) -> None:
    """Sends each signal in turn (`send(pid, signal)`: os.kill, or os.killpg for a session) and
    waits up to `timeout` for the process to end before the next, harsher one."""
    for signum in signals:
        with contextlib.suppress(ProcessLookupError):
            send(pid, signum)
        deadline = time.monotonic() + timeout
        while process_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not process_alive(pid):
            return


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on host:port now."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


_LISTEN_HOST = "127.0.0.1"
# Below Linux's default ephemeral range (32768-60999): a port the kernel hands to some
# outgoing connection between our choosing it and the server binding it (a JVM takes seconds
# to get there) made a Kafka node of `make test-cluster` exit with BindException. Ports asked of
# the kernel (bind to 0) come from that range, so ours never clash with them.
_LISTEN_PORTS = range(20000, 32768)


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return _LISTEN_PORTS.stop


def free_ports(count: int) -> list[int]:
    """`count` distinct ports free on 127.0.0.1 now, outside the kernel's ephemeral range where
    it has one (else any free ports). Each is held until all are chosen."""
    low = min(_ephemeral_low(), _LISTEN_PORTS.stop)
    candidates = range(_LISTEN_PORTS.start, low) if low > _LISTEN_PORTS.start + 1000 else range(0)
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sockets.append(_bind_unused_port(candidates, {s.getsockname()[1] for s in sockets}))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _bind_unused_port(candidates: range, taken: set[int]) -> socket.socket:
    for _ in range(200 if candidates else 0):
        port = random.choice(candidates)
        if port in taken:
            continue
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind((_LISTEN_HOST, port))
        except OSError:
            sock.close()
            continue
        return sock
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((_LISTEN_HOST, 0))
    return sock


def free_port() -> int:
    return free_ports(1)[0]
