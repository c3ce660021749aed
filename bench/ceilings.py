"""Figure 4: what PostgreSQL and Kafka alone do with the same rows and messages, on this machine.

- PostgreSQL: the event rows and their outbox rows, inserted by raw asyncpg into a copy of
  the event store's tables (`bench_ceiling`, made from the registry's own migration, so
  the same columns, keys, unique indexes and append-only triggers), one transaction per
  command, synchronous_commit on (the server default, checked), `clients` concurrent
  tasks on a pool as large as the registry's. Nothing is read, decided or hashed.
  A second, one-client run gives the commit latency (the fsync a command waits for).
- Kafka: the same messages (canonical JSON with position, key = agreement id) produced
  by raw aiokafka with the relay's producer settings (idempotent, acks=all, linger 2 ms; not
  transactional: the ceiling is the broker's, the relay's transactions are its own cost) to a
  topic with the same partitions and config, every send pipelined.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from coordreg_contracts.envelope import CONTENT_TYPE

from bench.events import Life
from bench.stats import summary_ms
from services.common.kafka_admin import PARTITIONS, TOPIC_CONFIG, ensure_topic
from services.common.kafka_security import KafkaConnection
from services.registry.migrations import MIGRATIONS
from services.registry.service_layer.event_store import StoredEvent

SCHEMA = "bench_ceiling"
INSERT = f"""WITH appended AS (
    INSERT INTO {SCHEMA}.events (agreement_id, sequence, event_id, event_type, recorded_at, envelope)
    VALUES ($1, $2, $3::uuid, $4, $5, $6) RETURNING position, sequence)
INSERT INTO {SCHEMA}.outbox (position, agreement_id, sequence)
SELECT position, $1, sequence FROM appended"""


async def prepare_schema(conn: asyncpg.Connection) -> None:
    sql = (MIGRATIONS / "001_event_store.sql").read_text(encoding="utf-8")
    await conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    await conn.execute(
        sql.replace("registry.", f"{SCHEMA}.").replace("SCHEMA IF NOT EXISTS registry", f"SCHEMA {SCHEMA}")
    )


async def postgres_inserts(
    dsn: str, lives: list[Life], clients: int, pool_size: int, commands: int
) -> dict[str, Any]:
    """`commands` one-event transactions, each client walking its agreements in sequence order."""
    conn = await asyncpg.connect(dsn)
    try:
        synchronous_commit = str(await conn.fetchval("SHOW synchronous_commit"))
        fsync = str(await conn.fetchval("SHOW fsync"))
        await prepare_schema(conn)
    finally:
        await conn.close()
    # One client per agreement at a time, so every insert continues its agreement's sequence.
    rows = [[_row(r) for r in life.rows()] for life in lives]
    plan: list[list[list[tuple[Any, ...]]]] = [rows[i::clients] for i in range(clients)]
    pool = await asyncpg.create_pool(dsn, min_size=pool_size, max_size=pool_size)
    assert pool is not None
    latencies: list[float] = []
    quota = {"left": commands}

    async def client(mine: list[list[tuple[Any, ...]]]) -> None:
        for life_rows in mine:
            for row in life_rows:
                if quota["left"] <= 0:
                    return
                quota["left"] -= 1
                started = time.perf_counter()
                async with pool.acquire() as conn:
                    await conn.execute(INSERT, *row)
                latencies.append(time.perf_counter() - started)

    try:
        started = time.perf_counter()
        await asyncio.gather(*(client(mine) for mine in plan))
        seconds = time.perf_counter() - started
        done = len(latencies)
        # Commit latency: one client, one transaction at a time, for a couple of seconds.
        single: list[float] = []
        extra = [_row(r) for life in lives[-200:] for r in life.rows()]
        until = time.perf_counter() + 2.0
        async with pool.acquire() as single_conn:
            for row in extra:
                if time.perf_counter() > until:
                    break
                fresh = (str(uuid.uuid4()), row[1], str(uuid.uuid4()), *row[3:])
                begun = time.perf_counter()
                await single_conn.execute(INSERT, *fresh)
                single.append(time.perf_counter() - begun)
    finally:
        await pool.close()
    return {
        "transactions": done,
        "seconds": round(seconds, 3),
        "per_second": round(done / seconds, 1) if seconds else 0.0,
        "latency_ms": summary_ms(latencies),
        "single_client_commit_ms": summary_ms(single),
        "clients": clients,
        "pool_size": pool_size,
        "synchronous_commit": synchronous_commit,
        "fsync": fsync,
    }


def _row(row: tuple[str, int, str, str, str, str]) -> tuple[Any, ...]:
    agreement_id, sequence, event_id, event_type, recorded_at, envelope = row
    return (agreement_id, sequence, event_id, event_type, datetime.fromisoformat(recorded_at), envelope)


async def drop_schema(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    finally:
        await conn.close()


async def kafka_produce(kafka: KafkaConnection, lives: list[Life], messages: int) -> dict[str, Any]:
    topic = f"bench.ceiling.{uuid.uuid4().hex[:8]}"
    await ensure_topic(kafka, topic, PARTITIONS, TOPIC_CONFIG)
    stored = [
        StoredEvent(position, life.agreement_id, e.sequence, row[5])
        for position, (life, e, row) in enumerate(
            ((life, e, row) for life in lives for e, row in zip(life.envelopes, life.rows(), strict=True)),
            start=1,
        )
    ][:messages]
    payloads = [(s.stream_id.encode("utf-8"), s.message()) for s in stored]
    producer = AIOKafkaProducer(
        **kafka.kwargs(),
        enable_idempotence=True,
        acks="all",
        linger_ms=2,
        request_timeout_ms=30000,
        max_batch_size=1048576,
    )
    await producer.start()
    try:
        started = time.perf_counter()
        futures = []
        for key, value in payloads:
            futures.append(
                await producer.send(
                    topic, value=value, key=key, headers=[("content-type", CONTENT_TYPE.encode())]
                )
            )
        await asyncio.gather(*futures)
        seconds = time.perf_counter() - started
    finally:
        await producer.stop()
    admin = AIOKafkaAdminClient(**kafka.kwargs())
    try:
        await admin.start()
        await admin.delete_topics([topic])
    except Exception:
        pass
    finally:
        await admin.close()
    size = sum(len(v) for _, v in payloads)
    return {
        "messages": len(payloads),
        "seconds": round(seconds, 3),
        "per_second": round(len(payloads) / seconds, 1) if seconds else 0.0,
        "megabytes_per_second": round(size / seconds / 1e6, 2) if seconds else 0.0,
        "mean_message_bytes": round(size / len(payloads)) if payloads else 0,
        "acks": "all",
        "idempotent": True,
    }
