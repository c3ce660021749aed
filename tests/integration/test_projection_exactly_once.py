"""Projection guarantees, fed real records read back from the real topic:
offsets commit with the read models, duplicates are skipped, gaps are parked then filled."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer, TopicPartition

from services.common.db import create_pool, migrate
from services.common.kafka_admin import TOPIC_CONFIG, ensure_topic
from services.projections.adapters.kafka_consumer import ProjectionWorker
from services.projections.migrations import MIGRATIONS
from tests.support.builders import report_body, sign_body
from tests.support.kafka import Brokers, read_topic
from tests.support.stack import Stack, running_stack


@dataclass(frozen=True)
class Record:
    value: bytes
    offset: int
    key: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()


@pytest.fixture
async def registry_only(database_url: str, kafka: Brokers, topic: str) -> AsyncIterator[Stack]:
    async with running_stack(database_url, kafka, topic, projections=False) as running:
        read_pool = await create_pool(database_url, min_size=1, max_size=3, schema="projections")
        await migrate(read_pool, "projections", MIGRATIONS, schema="projections")
        running.read_pool = read_pool
        yield running
        await read_pool.close()


async def topic_records(stack: Stack, reports: int = 2) -> tuple[str, list[Any], list[Any]]:
    """The agreement, its own records in order, and every record of the topic: the signing
    also registered its parties, whose streams are keyed (and partitioned) by their own subject."""
    signed = await stack.sign(sign_body())
    agreement_id = signed["agreement_id"]
    for period in ["2023", "2024", "2025", "2026"][:reports]:
        response = await stack.registry.post(
            f"/v1/agreements/{agreement_id}/progress-reports", json=report_body(period=period)
        )
        assert response.status_code == 201
    stored = await stack.pool.fetchval("SELECT count(*) FROM registry.events")
    everything = await read_topic(stack.kafka.consumer, stack.topic, stored)
    assert len(everything) == stored
    mine = sorted((r for r in everything if r.key == agreement_id.encode()), key=lambda r: r.offset)
    assert len(mine) == reports + 1
    return agreement_id, mine, everything


async def one_agreement_records(stack: Stack, reports: int = 2) -> tuple[str, list[Any]]:
    agreement_id, mine, _ = await topic_records(stack, reports)
    return agreement_id, mine


def worker(stack: Stack) -> ProjectionWorker:
    return ProjectionWorker(stack.read_pool, stack.kafka.projections, stack.topic, "projections-g-test")


async def read_model(stack: Stack) -> dict[str, Any]:
    return {
        "offsets": await stack.pool.fetch(
            "SELECT partition, next_offset FROM projections.offsets ORDER BY 1"
        ),
        "applied": await stack.pool.fetchval("SELECT count(*) FROM projections.applied"),
        "history": await stack.pool.fetchval("SELECT count(*) FROM projections.party_history"),
        "obligations": await stack.pool.fetch(
            "SELECT party_id, obligation_id, latest_report::text FROM projections.party_obligations ORDER BY 1, 2"
        ),
        "parked": await stack.pool.fetchval("SELECT count(*) FROM projections.parked"),
        "dead": await stack.pool.fetchval("SELECT count(*) FROM projections.dead_letters"),
    }


async def test_a_failing_batch_commits_neither_rows_nor_offsets(registry_only: Stack) -> None:
    """Rows and offsets share one transaction: when the offset write fails, no row survives."""
    stack = registry_only
    _, records = await one_agreement_records(stack)
    tp = TopicPartition(stack.topic, records[0].partition)
    await stack.read_pool.execute(
        "ALTER TABLE offsets ADD CONSTRAINT refuse CHECK (next_offset < 0) NOT VALID"
    )
    with pytest.raises(asyncpg.CheckViolationError):
        await worker(stack).apply_batch({tp: records})
    state = await read_model(stack)
    assert state["offsets"] == [] and state["applied"] == 0 and state["obligations"] == []
    await stack.read_pool.execute("ALTER TABLE offsets DROP CONSTRAINT refuse")
    await worker(stack).apply_batch({tp: records})
    state = await read_model(stack)
    assert [tuple(r) for r in state["offsets"]] == [(tp.partition, records[-1].offset + 1)]
    assert state["applied"] == 3


async def test_a_record_that_cannot_be_applied_is_dead_lettered_and_the_rest_goes_on(
    registry_only: Stack,
) -> None:
    stack = registry_only
    _, records = await one_agreement_records(stack)
    tp = TopicPartition(stack.topic, records[0].partition)
    poison = Record(b'{"not": "an envelope"}', records[1].offset, key=b"broken")
    live = worker(stack)
    live.producer = AIOKafkaProducer(**stack.kafka.admin.kwargs())
    await ensure_topic(stack.kafka.admin, live.dead_letter_topic, 1, TOPIC_CONFIG)
    await live.producer.start()
    try:
        await live.apply_batch({tp: [records[0], poison]})
    finally:
        await live.producer.stop()
    state = await read_model(stack)
    assert state["applied"] == 1 and live.dead_lettered == 1
    [dead] = await stack.read_pool.fetch("SELECT key, reason, record_offset FROM dead_letters")
    assert dead["key"] == "broken" and "ValidationError" in dead["reason"]
    [published] = await read_topic(stack.kafka.consumer, live.dead_letter_topic, 1)
    assert published.value == poison.value and dict(published.headers)["dlq-reason"].startswith(
        b"ValidationError"
    )


async def test_redelivered_events_take_effect_once(registry_only: Stack) -> None:
    stack = registry_only
    _, records = await one_agreement_records(stack)
    tp = TopicPartition(stack.topic, records[0].partition)
    await worker(stack).apply_batch({tp: records})
    once = await read_model(stack)
    # A crash after the broker delivered but before... anything: the whole batch comes again,
    # and again in pieces.
    await worker(stack).apply_batch({tp: records})
    await worker(stack).apply_batch({tp: records[1:]})
    again = await read_model(stack)
    assert again == once
    assert once["applied"] == 3 and once["history"] > 0


async def test_a_gap_is_parked_and_applied_when_filled(registry_only: Stack) -> None:
    stack = registry_only
    agreement_id, records = await one_agreement_records(stack, reports=3)
    tp = TopicPartition(stack.topic, records[0].partition)
    first, second, third, fourth = records
    await worker(stack).apply_batch({tp: [first, third, fourth]})
    state = await read_model(stack)
    assert state["applied"] == 1 and state["parked"] == 2
    version = await stack.pool.fetchval(
        "SELECT version FROM projections.agreements WHERE agreement_id = $1", agreement_id
    )
    assert version == 1, "nothing after the gap is applied"
    await worker(stack).apply_batch({tp: [second]})
    state = await read_model(stack)
    assert state["applied"] == 4 and state["parked"] == 0
    version = await stack.pool.fetchval(
        "SELECT version FROM projections.agreements WHERE agreement_id = $1", agreement_id
    )
    assert version == 4


async def test_a_restarted_worker_resumes_from_the_stored_offsets(registry_only: Stack) -> None:
    """Consumes through the real broker twice in the same group: the second run reapplies nothing."""
    stack = registry_only
    _, _, records = await topic_records(stack)
    seen = []
    for _ in range(2):
        live = worker(stack)
        stop = asyncio.Event()
        task = asyncio.create_task(live.run(stop))
        for _ in range(200):
            if await stack.pool.fetchval("SELECT count(*) FROM projections.applied") == len(records):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        stop.set()
        await task
        seen.append(live.seen)
    assert seen == [len(records), 0], "the second worker must start after what the first one stored"
    state = await read_model(stack)
    assert state["applied"] == len(records)
    # Right after each partition's last record; offsets are not a count (transaction markers take some).
    last = {r.partition: r.offset + 1 for r in sorted(records, key=lambda r: r.offset)}
    assert [tuple(r) for r in state["offsets"]] == sorted(last.items())
