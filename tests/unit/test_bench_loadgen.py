"""The plan file the bench writes is what the Go load generator sends, and its results file is
what the bench reads: the real binary, built from bench/loadgen, against a stub HTTP server."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from bench import loadgen
from bench.loadgen import Event, Loadgen, Results
from bench.workload import LIFE, Planner


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class Stub:
    url: str
    seen: list[Seen] = field(default_factory=list)


@pytest.fixture
def stub() -> Iterator[Stub]:
    lock = threading.Lock()
    state = {"position": 0, "agreements": 0}
    found = Stub("")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the registry

        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _note(self, body: bytes) -> Seen:
            parts = urlsplit(self.path)
            seen = Seen(self.command, parts.path, parse_qs(parts.query), dict(self.headers.items()), body)
            with lock:
                found.seen.append(seen)
            return seen

        def do_POST(self) -> None:
            seen = self._note(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:
                state["position"] += 1
                position = state["position"]
                if seen.path == "/v1/agreements":
                    state["agreements"] += 1
                    agreement = f"agr-{state['agreements']}"
                else:
                    agreement = seen.path.split("/")[3]
            self._answer(201, {"agreement_id": agreement, "position": position})

        def do_GET(self) -> None:
            self._note(b"")
            self._answer(200, {"agreement_id": self.path.split("/")[3].split("?")[0]})

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    found.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        server.shutdown()
        server.server_close()


def test_the_generator_sends_the_plan_and_reports_every_command(stub: Stub, tmp_path: Path) -> None:
    binary = loadgen.build(tmp_path / "loadgen")
    planner = Planner(0, 1, "T")
    lives = [(f"token-{n}", planner.next_life()) for n in range(4)]
    plan = tmp_path / "plan.jsonl"
    assert loadgen.write_plan(plan, lives, keys=True) == 4
    planned = [json.loads(line) for line in plan.read_text(encoding="utf-8").splitlines()]
    results = Results(tmp_path / "results.jsonl")
    events: list[Event] = []

    async def run() -> Event:
        go = Loadgen(binary)
        await go.start(stub.url, stub.url, 1, "reader")
        try:
            await go.plan(plan, 0)
            assert go.remaining == 4
            spec = {"name": "t", "mode": "open", "rate": 200.0, "duration": 0.1, "lag_every": 5,
                    "results": str(results.path), "drain": 20.0, "probe_wait": 20.0}  # fmt: skip
            return await go.run(spec, events.append)
        finally:
            await go.close()

    done = asyncio.run(run())
    results.read()
    assert done["not_sent"] == 0 and done["exhausted"] == 0
    assert len(results.records) == 20
    assert all(r.status == 201 and not r.error for r in results.records)
    assert done["last_position"] == 20

    posts = [s for s in stub.seen if s.method == "POST"]
    assert len(posts) == 20
    # One worker walks four lives in turn; each life's steps arrive in order, bodies verbatim,
    # later steps on the agreement its signing created, with the life's token and keys.
    walked: dict[str, list[Seen]] = {}
    for seen in posts:
        walked.setdefault(seen.headers["Authorization"], []).append(seen)
    assert sorted(walked) == sorted(f"Bearer token-{n}" for n in range(4))
    for (token, steps), line in zip(lives, planned, strict=True):
        sent = walked[f"Bearer {token}"]
        assert [s.body for s in sent] == [step.body for step in steps[: len(sent)]]
        assert [s.headers["Idempotency-Key"] for s in sent] == [k["key"] for k in line["steps"][: len(sent)]]
        assert sent[0].path == "/v1/agreements"
        agreement = sent[1].path.split("/")[3]  # what the stub answered to this life's signing
        assert agreement.startswith("agr-")
        kinds = LIFE[1 : len(sent)]
        suffix = {"report": "progress-reports", "amend": "amendments", "close": "close"}
        assert [s.path for s in sent[1:]] == [f"/v1/agreements/{agreement}/{suffix[k]}" for k in kinds]
        assert all(s.headers["Content-Type"] == "application/json" for s in sent)
    assert [r.kind for r in results.records].count("sign") == 4

    # Every 5th success: a sample for the db poll and a read-your-writes probe.
    samples = [e for e in events if e["ev"] == "sample"]
    assert [e["position"] for e in samples] == [5, 10, 15, 20]
    gets = [s for s in stub.seen if s.method == "GET"]
    assert sorted(int(s.query["min_position"][0]) for s in gets) == [5, 10, 15, 20]
    assert all(s.headers["Authorization"] == "Bearer reader" for s in gets)
    assert len(results.lags) == 4 and done["lag_missing"] == 0
