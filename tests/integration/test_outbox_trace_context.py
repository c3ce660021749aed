"""The command's trace context in the outbox (migration 007) and on the Kafka record.

- Each outbox row keeps its own command's W3C trace context, written by the same
  `registry.append_command` call as the events, also when the group commit puts several
  commands in one transaction; a command without one leaves NULL.
- Rows queued before 007 (NULL) are published as before: no trace header; a row with a
  context gets its `traceparent`/`tracestate` header. The record value stays the stored
  envelope's bytes either way. (This relay, in the test process, traces nothing itself: it
  forwards the stored context; tests/e2e/test_tracing.py runs a tracing one.)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from coordreg_contracts.envelope import canonical_json
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

from services.common.db import create_pool, migrate
from services.registry.adapters.postgres_store import PostgresEventStore
from services.registry.adapters.relay import OutboxRelay
from services.registry.migrations import MIGRATIONS
from services.registry.service_layer.event_store import StoredEvent
from tests.support.kafka import Brokers, read_topic
from tests.support.store_contract import envelopes_for


def _span_context(state: str = "") -> SpanContext:
    return SpanContext(
        int(secrets.token_hex(16), 16),
        int(secrets.token_hex(8), 16),
        is_remote=False,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState.from_header([state]) if state else TraceState(),
    )


def _traceparent(context: SpanContext) -> str:
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-01"


async def _append(store: PostgresEventStore, agreement_id: str, context: SpanContext | None) -> list[int]:
    """One command's append, with `context` as the current span (as the command bus's span is)."""
    if context is None:
        return await store.append(agreement_id, 0, envelopes_for(agreement_id, 0))
    with trace.use_span(NonRecordingSpan(context)):
        return await store.append(agreement_id, 0, envelopes_for(agreement_id, 0))


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, min_size=2, max_size=8, stateless=True)
    yield pool
    await pool.close()


async def test_each_outbox_row_keeps_its_own_commands_context_within_one_batch(pool: asyncpg.Pool) -> None:
    await migrate(pool, "registry", MIGRATIONS)
    store = PostgresEventStore(pool)
    agreements = [f"agr-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    first, second = _span_context(), _span_context("vendor=abc")
    contexts = [first, second, None]
    await asyncio.gather(*(_append(store, a, c) for a, c in zip(agreements, contexts, strict=True)))
    # One transaction for the three commands: their rows were written side by side.
    assert store.writer.transactions == 1

    rows = await pool.fetch(
        "SELECT agreement_id, trace_context FROM registry.outbox WHERE agreement_id = ANY($1::text[])",
        agreements,
    )
    stored = {r["agreement_id"]: r["trace_context"] for r in rows}
    assert stored == {
        agreements[0]: {"traceparent": _traceparent(first)},
        agreements[1]: {"traceparent": _traceparent(second), "tracestate": "vendor=abc"},
        agreements[2]: None,
    }


async def _append_the_way_005_did(pool: asyncpg.Pool, stream_id: str, context: SpanContext) -> None:
    """One signing, in the argument shape of migration 005's function (one-letter event keys)."""
    events = [
        {
            "a": stream_id,
            "s": envelope.sequence,
            "e": envelope.id,
            "t": envelope.type,
            "r": envelope.time,
            "v": canonical_json(envelope.without_position()).decode("utf-8"),
        }
        for envelope in envelopes_for(stream_id, 0)
    ]
    command = {"stream": stream_id, "events": events, "trace": {"traceparent": _traceparent(context)}}
    outcome = await pool.fetchval(
        "SELECT registry.append_command($1::text::jsonb)::text", json.dumps(command)
    )
    assert "positions" in json.loads(outcome)


def _before_007(folder: Path) -> Path:
    for script in sorted(MIGRATIONS.glob("*.sql")):
        if script.name < "007":
            (folder / script.name).write_text(script.read_text(encoding="utf-8"), encoding="utf-8")
    return folder


async def test_rows_from_before_007_and_rows_with_a_context_are_both_published(
    pool: asyncpg.Pool, kafka: Brokers, topic: str, tmp_path: Path
) -> None:
    await migrate(pool, "registry", _before_007(tmp_path))
    store = PostgresEventStore(pool)
    # Queued by 005's function, as a registry of that time called it, which knows nothing of
    # trace contexts (the field is ignored).
    old = f"agr-{uuid.uuid4().hex[:8]}"
    await _append_the_way_005_did(pool, old, _span_context())
    assert (await migrate(pool, "registry", MIGRATIONS))[0] == "007_outbox_trace_context.sql"
    assert (
        await pool.fetchval("SELECT trace_context FROM registry.outbox WHERE agreement_id = $1", old) is None
    )
    new = f"agr-{uuid.uuid4().hex[:8]}"
    context = _span_context("vendor=abc")
    await _append(store, new, context)

    stop = asyncio.Event()
    relay = asyncio.create_task(OutboxRelay(pool, kafka.relay, topic, poll_seconds=0.1).run(stop))
    try:
        records = {r.key.decode(): r for r in await read_topic(kafka.consumer, topic, 2)}
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(relay, 30)

    assert set(records) == {old, new}
    assert [name for name, _ in records[old].headers] == ["content-type"]
    headers = dict(records[new].headers)
    # Appended after 009, it is also signed: the signature travels beside the trace context (B12).
    signature = await pool.fetchval("SELECT signature FROM registry.events WHERE agreement_id = $1", new)
    assert headers.pop("envelope-signature") == signature.encode()
    assert headers == {
        "content-type": b"application/cloudevents+json",
        "traceparent": _traceparent(context).encode(),
        "tracestate": b"vendor=abc",
    }
    rows = await pool.fetch("SELECT position, agreement_id, sequence, envelope FROM registry.events")
    for row in rows:
        message = StoredEvent(
            row["position"], row["agreement_id"], row["sequence"], row["envelope"]
        ).message()
        assert bytes(records[row["agreement_id"]].value) == message
    assert await pool.fetchval("SELECT count(*) FROM registry.outbox") == 0
