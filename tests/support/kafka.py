"""Reading a topic back with a plain consumer: what any event consumer would see."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer


async def read_topic(bootstrap: str, topic: str, expected: int, timeout: float = 30) -> list[Any]:
    """Reads from the beginning until `expected` records arrived (or the timeout)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"reader-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        # What every event consumer must use: the relay publishes in transactions, and a
        # fenced relay's aborted records are visible to read_uncommitted readers.
        isolation_level="read_committed",
    )
    await consumer.start()
    records: list[Any] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(records) < expected and asyncio.get_running_loop().time() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            for batch in batches.values():
                records.extend(batch)
    finally:
        await consumer.stop()
    return records


def decode(record: Any) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(record.value)
    return value
