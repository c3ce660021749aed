"""A service started by `make run` dies with it, even when `make run` is killed with SIGKILL; the
ports the local servers listen on are chosen where no outgoing connection takes them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from deploy.local.processes import free_ports, process_alive

# The parent starts a child the way deploy/local/stack.py starts the services, prints its pid,
# then waits; the test kills the parent with SIGKILL.
PARENT = """
import subprocess, sys, time
from deploy.local.processes import die_with_parent
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], preexec_fn=die_with_parent)
print(child.pid, flush=True)
time.sleep(120)
"""


def test_a_service_dies_with_a_killed_parent() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert process_alive(child)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 10
        while process_alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not process_alive(child), "the child outlived its killed parent"
    finally:
        if parent.poll() is None:
            parent.kill()


def test_free_ports_are_distinct_bindable_and_outside_the_kernels_ephemeral_range() -> None:
    # An outgoing connection takes its local port from the ephemeral range: a port chosen there
    # could be taken before a slow server (a JVM) binds it.
    low, high = (int(n) for n in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    ports = free_ports(40)
    assert len(set(ports)) == 40
    assert all(not low <= port <= high for port in ports), ports
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
