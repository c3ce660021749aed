"""What the platform alerts on about a projection worker: how far behind each of its
partitions is, and what it could not apply (parked and dead-lettered events).

Lag comes from what the consumer already knows (the last stable offset that each fetch
response carries, and its position): no broker round trip, updated at most every second from
the worker's loop. The stored counts are the tables' (shared by every worker of the group),
recounted when partitions are assigned and every 30 seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import Gauge

LAG_RECORDS = Gauge(
    "projection_consumer_lag_records",
    "Records of the partition not yet applied to the read models: last stable offset - position",
    ["partition"],
)
LAG_SECONDS = Gauge(
    "projection_lag_seconds",
    "0 while the partition is caught up; else seconds since it fell behind or since the last applied "
    "record was published, whichever is later (grows while the worker is stuck)",
    ["partition"],
)
PARKED = Gauge("projection_parked_events", "Events waiting for a missing predecessor (the parked table)")
DEAD_LETTERS_STORED = Gauge(
    "projection_dead_letters_stored", "Records kept in the dead_letters table (recounted every 30 s)"
)

_COUNTS = "SELECT (SELECT count(*) FROM parked), (SELECT count(*) FROM dead_letters)"


async def recount_stored(pool: asyncpg.Pool) -> None:
    row = await pool.fetchrow(_COUNTS)
    assert row is not None
    PARKED.set(row[0])
    DEAD_LETTERS_STORED.set(row[1])


class PartitionLag:
    """The lag gauges of the partitions one worker owns (a revoked partition's series go away)."""

    def __init__(self, every_seconds: float = 1.0, recount_seconds: float = 30.0) -> None:
        self.every_seconds = every_seconds
        self.recount_seconds = recount_seconds
        self._due = 0.0
        self._recount_due = 0.0
        self._owned: set[int] = set()
        # partition -> wall-clock seconds: when the last applied record was published (its Kafka
        # timestamp), and when an update first saw the partition behind.
        self._published: dict[int, float] = {}
        self._behind_since: dict[int, float] = {}

    def assigned(self, partitions: Iterable[TopicPartition]) -> None:
        self._owned.update(tp.partition for tp in partitions)
        self._due = self._recount_due = 0.0

    def revoked(self, partitions: Iterable[TopicPartition]) -> None:
        for tp in partitions:
            self._forget(tp.partition)

    def clear(self) -> None:
        for partition in list(self._owned):
            self._forget(partition)

    def _forget(self, partition: int) -> None:
        self._owned.discard(partition)
        self._published.pop(partition, None)
        self._behind_since.pop(partition, None)
        for gauge in (LAG_RECORDS, LAG_SECONDS):
            with contextlib.suppress(KeyError):
                gauge.remove(str(partition))

    def applied(self, batches: Mapping[TopicPartition, Sequence[Any]]) -> None:
        """After a batch committed: when each partition's last record was published (ms timestamps)."""
        for tp, batch in batches.items():
            if batch:
                self._published[tp.partition] = batch[-1].timestamp / 1000

    async def update(self, consumer: AIOKafkaConsumer, pool: asyncpg.Pool) -> None:
        """Sets the gauges if a second has passed since the last time (call it from the loop,
        between batches: the consumer's position is then what is applied)."""
        now = time.monotonic()
        if now < self._due:
            return
        self._due = now + self.every_seconds
        if now >= self._recount_due:
            self._recount_due = now + self.recount_seconds
            # A failure here is the loop's next one to meet; the gauges keep their last values.
            with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await recount_stored(pool)
        ends: dict[TopicPartition, int] = {}
        for tp in consumer.assignment():
            # Only partitions whose assignment finished (seeked to the offsets stored with the
            # read models): asking the position of one still being assigned would make the
            # consumer reset it to the earliest offset, racing the seek, and replay the partition.
            if tp.partition not in self._owned:
                continue
            # Known once a fetch answered for the partition: the last stable offset under
            # read_committed (an open transaction's records are not lag yet), else the high watermark.
            end = consumer.last_stable_offset(tp)
            if end is None or end < 0:
                end = consumer.highwater(tp)
            if end is not None:
                ends[tp] = end
        wall = time.time()
        for tp, end in ends.items():
            try:
                position = await asyncio.wait_for(consumer.position(tp), 0.5)
            except (KafkaError, TimeoutError):
                continue  # revoked meanwhile, or no position yet
            partition = tp.partition
            if partition not in self._owned:
                continue  # revoked meanwhile
            lag = max(0, end - position)
            seconds = 0.0
            if lag:
                since = self._behind_since.setdefault(partition, wall)
                seconds = max(0.0, wall - max(since, self._published.get(partition, 0.0)))
            else:
                self._behind_since.pop(partition, None)
            label = str(partition)
            LAG_RECORDS.labels(label).set(lag)
            LAG_SECONDS.labels(label).set(seconds)
