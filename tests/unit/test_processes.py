"""A service started by `make run` dies with it, even when `make run` is killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from deploy.local.processes import process_alive

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
