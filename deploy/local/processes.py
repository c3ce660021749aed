"""Whether a process that is not our child still runs (LocalPostgres and LocalKafka leftovers),
and what every local server shares."""

from __future__ import annotations

import contextlib
import os
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
