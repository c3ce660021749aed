"""One command, one trace, across three real processes: the registry, the relay and a projection
worker, each started as its own OS process (tests/faults/harness.py) with the file exporter.

The caller sends its own `traceparent` (and `tracestate`), so the trace id is known before the
command: every span of the command must carry it, and each process's span must be the child of
the one before it: caller -> registry server span -> command span -> the relay's span per record
(through the outbox row) -> the worker's span per record (through the Kafka `traceparent`
header). A relay that did not set the header, or an outbox row without the context, leaves the
worker's span (or the relay's) in a trace of its own, and this test fails.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from deploy.local.processes import free_port
from deploy.tokens import mint
from services.common.db import create_pool
from services.registry.service_layer.event_store import StoredEvent
from tests.faults.harness import COMPONENTS, Env, Service, projection_caught_up, registry_ready, wait_until
from tests.support.builders import sign_body
from tests.support.kafka import Brokers, read_topic

PARTIES = ["mttq-hoa-binh", "hctd-hoa-binh"]


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_id: str | None
    attributes: dict[str, Any]


def _hex(value: str | None) -> str | None:
    # The SDK's JSON writes ids as 0x-prefixed hex.
    return None if value is None else value.removeprefix("0x")


def read_spans(path: Path) -> list[Span]:
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    spans = []
    for line in lines:
        doc = json.loads(line)
        spans.append(
            Span(
                service=doc["resource"]["attributes"]["service.name"],
                name=doc["name"],
                kind=doc["kind"].removeprefix("SpanKind."),
                trace_id=str(_hex(doc["context"]["trace_id"])),
                span_id=str(_hex(doc["context"]["span_id"])),
                parent_id=_hex(doc["parent_id"]),
                attributes=doc["attributes"],
            )
        )
    return spans


def ancestors(span: Span, spans: list[Span]) -> list[str]:
    """The ids of the span's parent, its parent's parent, ... as far as `spans` holds them."""
    by_id = {s.span_id: s for s in spans}
    chain: list[str] = []
    parent = span.parent_id
    while parent is not None and parent not in chain:
        chain.append(parent)
        parent = by_id[parent].parent_id if parent in by_id else None
    return chain


def start(env: Env, name: str, module: str, settings: dict[str, str]) -> Service:
    service = Service(
        name, module, {**env.service_env(name, *COMPONENTS[module]), **settings}, env.logs / f"{name}.log"
    )
    env.services.append(service)
    return service.start()


def traced(prefix: str, path: Path) -> dict[str, str]:
    return {f"{prefix}_TRACING_EXPORTER": "file", f"{prefix}_TRACING_FILE": str(path)}


async def test_one_command_is_one_trace_across_registry_relay_and_worker(
    database_url: str, kafka: Brokers, topic: str, tmp_path: Path
) -> None:
    env = Env(database_url, kafka, topic, tmp_path)
    files = {name: tmp_path / f"{name}.spans.jsonl" for name in ("registry", "relay", "worker")}
    port = free_port()
    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        start(
            env,
            "registry",
            "services.registry.entrypoints.main",
            {"REGISTRY_PORT": str(port), **traced("REGISTRY", files["registry"])},
        )
        token = mint("tracing-test", party_ids=PARTIES)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=30, headers={"Authorization": f"Bearer {token}"}
        ) as client:
            await wait_until(lambda: registry_ready(client), 60)
            # The registry migrated the database; the relay and the worker start on it.
            start(
                env, "relay", "services.registry.entrypoints.relay_main", traced("REGISTRY", files["relay"])
            )
            start(
                env,
                "worker",
                "services.projections.entrypoints.worker",
                traced("PROJECTIONS", files["worker"]),
            )

            trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)
            response = await client.post(
                "/v1/agreements",
                json=sign_body(),
                headers={"traceparent": f"00-{trace_id}-{caller_span}-01", "tracestate": "caller=e2e"},
            )
            assert response.status_code == 201, response.text
            agreement_id = response.json()["agreement_id"]

            await wait_until(lambda: projection_caught_up(pool), 90)

            async def worker_span_written() -> bool:
                return any(
                    s.attributes.get("coordreg.agreement_id") == agreement_id
                    for s in read_spans(files["worker"])
                )

            await wait_until(worker_span_written, 30)
        spans = {
            name: [s for s in read_spans(path) if s.trace_id == trace_id] for name, path in files.items()
        }

        # The registry: its server span continues the caller's; the command span descends from it
        # (FastAPI's own operation spans may sit between them).
        [server] = [s for s in spans["registry"] if s.kind == "SERVER"]
        assert server.parent_id == caller_span and server.name == "POST /v1/agreements"
        [command] = [s for s in spans["registry"] if s.name == "command SignAgreement"]
        assert server.span_id in ancestors(command, spans["registry"])
        assert command.attributes["coordreg.agreement_id"] == agreement_id

        # The relay: a span per record of the command (the signing, and the directory events of
        # parties it registered), each the child of the command's span, through the outbox row.
        stored = await _stored_events(pool)
        assert spans["relay"], "the relay's spans are not in the command's trace"
        assert {(s.kind, s.parent_id) for s in spans["relay"]} == {("PRODUCER", command.span_id)}
        assert sorted(s.attributes["coordreg.position"] for s in spans["relay"]) == sorted(stored)

        # The worker: a span per applied record, each the child of the relay's span of that record.
        relay_by_position = {s.attributes["coordreg.position"]: s for s in spans["relay"]}
        assert spans["worker"], "the worker's spans are not in the command's trace"
        for span in spans["worker"]:
            assert span.kind == "CONSUMER" and span.attributes["coordreg.outcome"] == "applied"
            assert span.parent_id == relay_by_position[span.attributes["coordreg.position"]].span_id
        assert agreement_id in {s.attributes["coordreg.agreement_id"] for s in spans["worker"]}
        assert len(spans["worker"]) == len(stored)

        assert {name: {s.service for s in found} for name, found in spans.items()} == {
            "registry": {"coordreg-registry"},
            "relay": {"coordreg-relay"},
            "worker": {"coordreg-projection-worker"},
        }

        # On the wire: the value is the stored envelope's bytes, unchanged; the trace context is
        # in the headers, the relay's span as the parent, the caller's tracestate carried along.
        records = await read_topic(kafka.consumer, topic, len(stored))
        assert len(records) == len(stored)
        for record in records:
            value = bytes(record.value)
            position = json.loads(value)["position"]
            assert value == stored[position]
            headers = dict(record.headers)
            relay_span = relay_by_position[position]
            assert headers["traceparent"] == f"00-{trace_id}-{relay_span.span_id}-01".encode()
            assert headers["tracestate"] == b"caller=e2e"
            assert headers["content-type"] == b"application/cloudevents+json"
    finally:
        await asyncio.to_thread(env.stop_all)
        await pool.close()


async def _stored_events(pool: asyncpg.Pool) -> dict[int, bytes]:
    """Each stored event's Kafka record value, by position."""
    rows = await pool.fetch("SELECT position, agreement_id, sequence, envelope FROM registry.events")
    return {
        r["position"]: StoredEvent(r["position"], r["agreement_id"], r["sequence"], r["envelope"]).message()
        for r in rows
    }
