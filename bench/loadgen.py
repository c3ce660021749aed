"""The compiled load generator (bench/loadgen, Go): built here, driven over pipes.

Python plans, Go executes. The bench writes agreement lives to a plan file (JSON lines: per
life its client's token and its ordered steps, each with method, path template holding
`{agreement_id}`, the body's bytes verbatim, optionally an Idempotency-Key) and sends the
generator orders on stdin; the generator answers events on stdout and writes one record per
command and per lag probe to each phase's results file. All times in those files are
CLOCK_MONOTONIC seconds, the clock of `time.perf_counter`, so they sit beside the bench's own.

The generator costs a fraction of the CPU per command the Python/httpx one did, on a machine
whose cores the system under test needs (bench/README.md).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.workload import Step

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "bench" / "loadgen"
BINARY = ROOT / ".local" / "bench" / "loadgen"

Event = dict[str, Any]


class LoadgenError(RuntimeError):
    pass


def go_version() -> str:
    go = shutil.which("go")
    if go is None:
        return "missing"
    done = subprocess.run([go, "env", "GOVERSION"], capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def build(binary: Path = BINARY) -> Path:
    """`go build` the generator into `binary`, unless it is newer than every source file."""
    sources = [p for p in SOURCE.iterdir() if p.suffix == ".go" or p.name in ("go.mod", "go.sum")]
    newest = max(p.stat().st_mtime for p in sources)
    if binary.exists() and binary.stat().st_mtime >= newest:
        return binary
    go = shutil.which("go")
    if go is None:
        raise LoadgenError("the Go toolchain (`go`) is needed to build bench/loadgen")
    binary.parent.mkdir(parents=True, exist_ok=True)
    # Standard library only: nothing is downloaded. Built from its own module's folder.
    done = subprocess.run([go, "build", "-o", str(binary), "."], cwd=SOURCE, capture_output=True, text=True)
    if done.returncode != 0:
        raise LoadgenError(f"go build bench/loadgen failed:\n{done.stderr}")
    return binary


def plan_line(token: str, steps: list[Step], *, keys: bool = False) -> bytes:
    """One life of the plan file. Bodies are embedded as raw JSON, so Go sends these bytes."""
    parts = []
    for step in steps:
        key = b',"key":' + json.dumps(str(uuid.uuid4())).encode() if keys else b""
        parts.append(
            b'{"kind":' + json.dumps(step.kind).encode() + b',"method":"POST","path":'
            + json.dumps(step.path).encode() + b',"body":' + step.body + key + b"}"
        )  # fmt: skip
    return b'{"token":' + json.dumps(token).encode() + b',"steps":[' + b",".join(parts) + b"]}\n"


def write_plan(path: Path, lives: Iterable[tuple[str, list[Step]]], *, keys: bool = False) -> int:
    count = 0
    with path.open("wb") as out:
        for token, steps in lives:
            out.write(plan_line(token, steps, keys=keys))
            count += 1
    return count


@dataclass
class Record:
    intended: float
    start: float
    end: float
    kind: str
    status: int  # 0: no HTTP answer (connection error, timeout) or an unreadable one
    position: int = 0
    error: str = ""


class Results:
    """A phase's results file, read as it grows (complete lines only)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: list[Record] = []
        self.lags: list[tuple[float, float]] = []  # (2xx at, seconds until the API had it)
        self._offset = 0
        self._rest = b""

    def read(self) -> None:
        try:
            with self.path.open("rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except FileNotFoundError:
            return
        self._offset += len(chunk)
        lines = (self._rest + chunk).split(b"\n")
        self._rest = lines.pop()
        for line in lines:
            item = json.loads(line)
            if item["t"] == "lag":
                self.lags.append((item["at"], item["lag"]))
            else:
                self.records.append(
                    Record(
                        item.get("intended", 0.0),
                        item.get("start", 0.0),
                        item.get("end", 0.0),
                        item.get("kind", ""),
                        item["status"],
                        item.get("position", 0),
                        item.get("error", ""),
                    )
                )


class Loadgen:
    """One generator process for a whole load run: its connections and lives in progress
    carry over from phase to phase."""

    def __init__(self, binary: Path) -> None:
        self.binary = binary
        self._process: asyncio.subprocess.Process | None = None
        self._plans_in_flight = 0
        self.remaining = 0  # planned lives no worker has taken yet
        self.errors: list[str] = []

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    async def start(self, registry: str, projections: str, clients: int, read_token: str) -> None:
        self._process = await asyncio.create_subprocess_exec(
            str(self.binary), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=1 << 20
        )
        await self._send(
            {"op": "config", "registry": registry, "projections": projections, "clients": clients,
             "read_token": read_token, "timeout": 30}
        )  # fmt: skip
        event = await self._event()
        if event["ev"] != "configured":
            raise LoadgenError(f"loadgen refused its configuration: {event}")

    async def close(self) -> None:
        if self._process is None:
            return
        if self._process.returncode is None:
            await self._send({"op": "quit"})
            assert self._process.stdin is not None
            self._process.stdin.close()
            try:
                await asyncio.wait_for(self._process.wait(), 10)
            except TimeoutError:
                self._process.kill()
                await self._process.wait()
        self._process = None

    async def _send(self, order: dict[str, Any]) -> None:
        assert self._process is not None and self._process.stdin is not None
        self._process.stdin.write(json.dumps(order).encode() + b"\n")
        await self._process.stdin.drain()

    async def _event(self) -> Event:
        assert self._process is not None and self._process.stdout is not None
        line = await self._process.stdout.readline()
        if not line:
            code = await self._process.wait()
            raise LoadgenError(f"loadgen exited with {code}")
        event: Event = json.loads(line)
        if event["ev"] == "planned":
            self._plans_in_flight -= 1
            self.remaining = int(event["remaining"])
            if event.get("error"):
                self.errors.append(f"plan: {event['error']}")
        elif event["ev"] == "error":
            self.errors.append(str(event.get("message")))
        elif event["ev"] == "done" and "remaining" in event:
            self.remaining = int(event["remaining"])
        return event

    async def send_plan(self, path: Path, low: int) -> None:
        """Adds the lives of `path`; the answer is read with the other events."""
        self._plans_in_flight += 1
        await self._send({"op": "plan", "file": str(path), "low": low})

    async def settle(self) -> None:
        """Reads events until every plan sent has been loaded."""
        errors = len(self.errors)
        while self._plans_in_flight > 0:
            await self._event()
        if len(self.errors) > errors:
            raise LoadgenError(f"loadgen could not load a plan: {self.errors[errors:]}")

    async def plan(self, path: Path, low: int) -> None:
        await self.send_plan(path, low)
        await self.settle()

    async def run(self, spec: dict[str, Any], on_event: Callable[[Event], None]) -> Event:
        """Runs one phase; every event until its `done` goes to `on_event` (samples, low, ...)."""
        await self._send({"op": "run", **spec})
        while True:
            event = await self._event()
            if event["ev"] == "done":
                if event.get("failed"):
                    raise LoadgenError(f"loadgen could not run {spec['name']}: {self.errors[-3:]}")
                return event
            on_event(event)
