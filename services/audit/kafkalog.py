"""Reading the whole events topic back, partition by partition, up to fixed end offsets.

No consumer group: partitions are assigned by hand, so reading never disturbs the live
projection's group and never commits anything to Kafka.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from services.common.kafka_security import KafkaConnection


class TopicUnavailable(RuntimeError):
    """The topic does not exist, or the broker stopped delivering records before the end offsets."""


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes


async def topic_partitions(kafka: KafkaConnection, topic: str) -> list[int]:
    admin = AIOKafkaAdminClient(**kafka.kwargs())
    await admin.start()
    try:
        described: list[dict[str, Any]] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if not described or described[0].get("error_code", 0) != 0 or not described[0].get("partitions"):
        raise TopicUnavailable(f"topic {topic!r} does not exist on {kafka.bootstrap_servers}")
    return sorted(int(p["partition"]) for p in described[0]["partitions"])


class TopicReader:
    """`async with TopicReader(kafka, topic) as reader:` then offsets and `read(start, end)`."""

    def __init__(self, kafka: KafkaConnection, topic: str, *, stall_seconds: float = 120.0) -> None:
        self.kafka = kafka
        self.topic = topic
        self.stall_seconds = stall_seconds
        self.partitions: list[int] = []
        self._consumer: AIOKafkaConsumer | None = None

    async def __aenter__(self) -> Self:
        self.partitions = await topic_partitions(self.kafka, self.topic)
        consumer = AIOKafkaConsumer(
            **self.kafka.kwargs(),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # What the projection sees: the relay publishes in transactions, and the records of
            # an aborted one (a fenced relay's) are not part of the log.
            isolation_level="read_committed",
            max_partition_fetch_bytes=4 * 1024 * 1024,
            fetch_max_bytes=64 * 1024 * 1024,
        )
        await consumer.start()
        consumer.assign(self._tps(self.partitions))
        self._consumer = consumer
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    def _tps(self, partitions: list[int]) -> list[TopicPartition]:
        return [TopicPartition(self.topic, p) for p in partitions]

    @property
    def consumer(self) -> AIOKafkaConsumer:
        assert self._consumer is not None, "use TopicReader in `async with`"
        return self._consumer

    async def end_offsets(self) -> dict[int, int]:
        ends = await self.consumer.end_offsets(self._tps(self.partitions))
        return {tp.partition: int(offset) for tp, offset in ends.items()}

    async def beginning_offsets(self) -> dict[int, int]:
        begins = await self.consumer.beginning_offsets(self._tps(self.partitions))
        return {tp.partition: int(offset) for tp, offset in begins.items()}

    async def read(
        self, start: Mapping[int, int], end: Mapping[int, int], *, max_records: int = 5000
    ) -> AsyncIterator[list[Record]]:
        """Batches of records with start[p] <= offset < end[p], each partition in offset order."""
        consumer = self.consumer
        pending: set[TopicPartition] = set()
        for tp in self._tps(self.partitions):
            first = start.get(tp.partition, 0)
            if first < end.get(tp.partition, 0):
                consumer.seek(tp, first)
                pending.add(tp)
        loop = asyncio.get_running_loop()
        progressed = loop.time()
        while pending:
            batches = await consumer.getmany(*pending, timeout_ms=500, max_records=max_records)
            records = [
                Record(tp.partition, r.offset, r.key, r.value)
                for tp, batch in batches.items()
                for r in batch
                if r.offset < end[tp.partition]
            ]
            if records:
                progressed = loop.time()
                yield records
            for tp in list(pending):
                if await consumer.position(tp) >= end[tp.partition]:
                    pending.discard(tp)
            if pending and loop.time() - progressed > self.stall_seconds:
                waiting = sorted(tp.partition for tp in pending)
                raise TopicUnavailable(
                    f"no records from partitions {waiting} of {self.topic!r} for {self.stall_seconds:.0f}s"
                )
