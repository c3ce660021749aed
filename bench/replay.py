"""Figure 3: how fast the audit tool rebuilds the read models, from the store and from Kafka.

The events are made fast: real envelopes from the domain (bench/events.py), each
agreement's life appended in one `PostgresEventStore.append` (events + outbox + claim in
one transaction), with the relay and the projections stopped. Restarting them then gives
two more figures for free: how fast the relay drains that outbox backlog into Kafka, and
how fast the live projection applies it.

The rebuild itself is the audit tool's (`services.audit.rebuild.rebuild`, its default
number of workers), run in a child process (`python -m bench.replay rebuild --from
store|kafka --schema NAME`) so that its CPU time is its own. It prints its own progress.

Its ceiling, `rebuild_ceiling` (bench/rebuild_ceiling.py), reads the same rows from
`registry.events` and COPYs them into a scratch table, decoding nothing: the rebuild's rate is
reported as a share of it, both measured on the same store in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg

from bench.rebuild_ceiling import rebuild_ceiling

__all__ = ["audit_tool_available", "drop_schema", "rebuild_ceiling", "run_rebuild"]

ROOT = Path(__file__).resolve().parents[1]


def audit_tool_available() -> bool:
    try:
        if importlib.util.find_spec("services.audit.rebuild") is None:
            return False
    except ImportError:
        return False
    return (ROOT / "services" / "audit" / "rebuild.py").exists()


def run_rebuild(
    source: str, schema: str, database_url: str, kafka_env: dict[str, str]
) -> tuple[dict[str, Any], float]:
    """The audit tool's rebuild in a child process; its JSON summary and its CPU seconds.
    `kafka_env`: the audit principal's variables (KafkaConnection.env)."""
    env = {**os.environ, "DATABASE_URL": database_url, **kafka_env}
    before = os.times()
    done = subprocess.run(
        [sys.executable, "-m", "bench.replay", "rebuild", "--from", source, "--schema", schema],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    after = os.times()
    if done.returncode != 0:
        raise RuntimeError(f"rebuild from {source} failed (exit {done.returncode})")
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result, cpu


async def drop_schema(database_url: str, schema: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def _child(source: str, schema: str) -> dict[str, Any]:
    from services.audit.rebuild import rebuild
    from services.audit.settings import AuditSettings

    settings = AuditSettings()
    began = time.perf_counter()
    result = await rebuild(settings, source=source, schema=schema, replace=True)
    summary: dict[str, Any] = result.to_json()
    summary["wall_seconds"] = round(time.perf_counter() - began, 3)
    print(result.summary(), file=sys.stderr, flush=True)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.replay")
    commands = parser.add_subparsers(dest="command", required=True)
    child = commands.add_parser("rebuild", help="run the audit tool's rebuild and print its JSON summary")
    child.add_argument("--from", dest="source", choices=["store", "kafka"], required=True)
    child.add_argument("--schema", required=True)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(_child(args.source, args.schema))), flush=True)


if __name__ == "__main__":
    main()
