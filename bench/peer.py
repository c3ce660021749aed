"""Figure 5, the peer's side: `eventsourcing[postgres]` in a throwaway virtualenv, run as a subprocess.

The virtualenv lives at `.local/bench/peer-venv` and is made once (pip from PyPI, every file
checked against bench/peer-requirements.txt's hashes); the project's lock file is not touched. The peer writes to its own schema (`bench_peer`) of
the same PostgreSQL server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import asyncpg

from bench.stack import BENCH_LOCAL, say

PEER_VENV = BENCH_LOCAL / "peer-venv"
# The versions compared, pinned with their hashes (eventsourcing[postgres]==9.5.6 and
# psycopg[binary,pool]: psycopg's binary wheel carries its own libpq, the C implementation).
REQUIREMENTS = Path(__file__).with_name("peer-requirements.txt")
SCHEMA = "bench_peer"
APP = Path(__file__).with_name("peer_app.py")


class PeerUnavailable(RuntimeError):
    pass


def ensure_venv() -> Path:
    python = PEER_VENV / "bin" / "python"
    stamp = PEER_VENV / "installed.txt"
    pins = REQUIREMENTS.read_text()
    if stamp.exists() and stamp.read_text() == pins and python.exists():
        return python
    say(f"making the peer's virtualenv at {PEER_VENV} ({REQUIREMENTS.name})")
    made = subprocess.run(
        [sys.executable, "-m", "venv", "--clear", str(PEER_VENV)], capture_output=True, text=True
    )
    if made.returncode != 0:
        raise PeerUnavailable(f"python -m venv failed: {made.stderr.strip()[-500:]}")
    pip = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "--require-hashes",
            "-r",
            str(REQUIREMENTS),
        ],
        capture_output=True,
        text=True,
    )
    if pip.returncode != 0:
        raise PeerUnavailable(f"pip install -r {REQUIREMENTS.name} failed: {pip.stderr.strip()[-500:]}")
    stamp.write_text(pins)
    return python


async def reset_schema(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        await conn.execute(f"CREATE SCHEMA {SCHEMA}")
    finally:
        await conn.close()


async def drop_schema(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    finally:
        await conn.close()


def run_peer(dsn: str, commands: int, clients: int, pool_size: int, tag: str) -> tuple[dict[str, Any], float]:
    """Runs the peer; returns its result and the CPU seconds its process used."""
    python = ensure_venv()
    url = urlsplit(dsn)
    args = [
        str(python),
        str(APP),
        f"--commands={commands}",
        f"--clients={clients}",
        f"--pool={pool_size}",
        f"--host={url.hostname or '127.0.0.1'}",
        f"--port={url.port or 5432}",
        f"--user={unquote(url.username or 'postgres')}",
        f"--password={unquote(url.password or '')}",
        f"--dbname={url.path.lstrip('/') or 'postgres'}",
        f"--schema={SCHEMA}",
        f"--tag={tag}",
    ]
    before = os.times()
    done = subprocess.run(args, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ""})
    after = os.times()
    if done.returncode != 0:
        raise PeerUnavailable(f"the peer failed: {done.stderr.strip()[-1500:]}")
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result, cpu
