"""The real Kafka broker that local runs use, and proof that aiokafka works against it.

Always starts deploy/local/kafka.py's LocalKafka in a temporary folder, even when
KAFKA_BOOTSTRAP_SERVERS names another broker: what is under test is the broker that local
runs provision (its pinned version, its files on disk, a restart on the same data dir).
"""

from __future__ import annotations

import struct
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from deploy.local.kafka import KAFKA_VERSION, TOPIC_CONFIG, LocalKafka, ensure_jars, ensure_topic
from services.common.kafka_security import KafkaConnection

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache"


@pytest.fixture(scope="module")
def local_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    broker = LocalKafka(tmp_path_factory.mktemp("kafka"), CACHE)
    started = time.monotonic()
    broker.start()
    print(f"\nKafka {KAFKA_VERSION} cold start (format + start): {time.monotonic() - started:.1f} s")
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="module")
def as_admin(local_kafka: LocalKafka) -> KafkaConnection:
    """The super user: what these tests prove is aiokafka against the broker, not the ACLs."""
    return local_kafka.admin


def new_topic_name() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def record_pairs(count: int, keys: int) -> list[tuple[bytes, bytes]]:
    """`count` records over `keys` keys; each value is its key plus its sequence for that key."""
    seen: dict[int, int] = defaultdict(int)
    pairs = []
    for i in range(count):
        key = i % keys
        pairs.append((f"agreement-{key}".encode(), f"agreement-{key}:{seen[key]}".encode()))
        seen[key] += 1
    return pairs


async def produce(
    as_admin: KafkaConnection, topic: str, pairs: list[tuple[bytes, bytes]], max_batch_size: int = 16384
) -> None:
    producer = AIOKafkaProducer(
        **as_admin.kwargs(), enable_idempotence=True, acks="all", max_batch_size=max_batch_size
    )
    await producer.start()
    try:
        futures = [await producer.send(topic, key=key, value=value) for key, value in pairs]
        for future in futures:
            await future  # raises if the broker did not acknowledge the record
    finally:
        await producer.stop()


async def consume(
    as_admin: KafkaConnection, topic: str, group: str, expected: int, within_s: float = 30
) -> list[tuple[bytes, bytes]]:
    """Read `expected` records as member of `group`, then commit; returns (key, value) in read order."""
    consumer = AIOKafkaConsumer(
        topic,
        **as_admin.kwargs(),
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    read: list[tuple[bytes, bytes]] = []
    try:
        deadline = time.monotonic() + within_s
        while len(read) < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                read.extend((record.key, record.value) for record in records)
        await consumer.commit()
    finally:
        await consumer.stop()
    return read


def assert_per_key_order(read: list[tuple[bytes, bytes]], sent: list[tuple[bytes, bytes]]) -> None:
    assert len(read) == len(sent)
    by_key: dict[bytes, list[bytes]] = defaultdict(list)
    for key, value in read:
        by_key[key].append(value)
    expected: dict[bytes, list[bytes]] = defaultdict(list)
    for key, value in sent:
        expected[key].append(value)
    assert by_key == expected


def stored_batches(broker: LocalKafka, topic: str) -> dict[int, list[tuple[int, int, int]]]:
    """(producer id, base sequence, record count) of every batch on disk, by partition.

    Read from the v2 record batch headers in the broker's segment files: the proof that the
    broker took the batches as idempotent ones (a plain producer writes producer id -1).
    """
    found: dict[int, list[tuple[int, int, int]]] = {}
    for segment in (broker.data_dir / "kraft-logs").glob(f"{topic}-*/*.log"):
        partition = int(segment.parent.name.rsplit("-", 1)[1])
        data = segment.read_bytes()
        batches = found.setdefault(partition, [])
        pos = 0
        while pos + 61 <= len(data):
            (length,) = struct.unpack_from(">i", data, pos + 8)
            assert data[pos + 16] == 2, "record batch magic"
            producer_id, _epoch, base_sequence, count = struct.unpack_from(">qhii", data, pos + 43)
            batches.append((producer_id, base_sequence, count))
            pos += 12 + length
    return found


async def committed_total(as_admin: KafkaConnection, topic: str, group: str) -> int:
    admin = AIOKafkaAdminClient(**as_admin.kwargs())
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return sum(meta.offset for tp, meta in offsets.items() if tp.topic == topic)


async def test_broker_runs_the_pinned_kafka_version(
    local_kafka: LocalKafka, as_admin: KafkaConnection
) -> None:
    broker = local_kafka
    assert (ensure_jars(CACHE) / f"kafka_2.13-{KAFKA_VERSION}.jar").exists()
    # The running broker's own word, not just the jar on disk.
    server_log = (broker.log_dir / "server.log").read_text()
    assert f"Kafka version: {KAFKA_VERSION}" in server_log
    assert "Kafka Server started" in server_log
    address = as_admin.bootstrap_servers
    assert address == f"127.0.0.1:{address.rsplit(':', 1)[1]}"


async def test_topic_with_unlimited_retention_and_six_partitions(as_admin: KafkaConnection) -> None:
    topic = new_topic_name()
    await ensure_topic(as_admin, topic, 6, TOPIC_CONFIG)
    await ensure_topic(as_admin, topic, 6, TOPIC_CONFIG)  # exists already: fine

    admin = AIOKafkaAdminClient(**as_admin.kwargs())
    await admin.start()
    try:
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    [resource] = response.to_object()["resources"]
    assert resource["error_code"] == 0
    configs = {entry["config_names"]: entry["config_value"] for entry in resource["config_entries"]}
    for key, value in TOPIC_CONFIG.items():
        assert configs[key] == value, key
    assert described["error_code"] == 0
    assert len(described["partitions"]) == 6


async def test_idempotent_producer_and_manual_commit_group(
    local_kafka: LocalKafka, as_admin: KafkaConnection
) -> None:
    topic = new_topic_name()
    await ensure_topic(as_admin, topic, 6, TOPIC_CONFIG)
    sent = record_pairs(1000, keys=37)
    # Small batches: many batches in flight per partition, so sequence numbers matter.
    await produce(as_admin, topic, sent, max_batch_size=1024)

    group = f"group-{topic}"
    read = await consume(as_admin, topic, group, expected=len(sent))
    assert_per_key_order(read, sent)
    assert await committed_total(as_admin, topic, group) == len(sent)
    # Committed: the same group has nothing left to read.
    assert await consume(as_admin, topic, group, expected=1, within_s=3) == []

    batches = stored_batches(local_kafka, topic)
    assert sum(count for partition in batches.values() for _, _, count in partition) == len(sent)
    assert sum(len(partition) for partition in batches.values()) > 6  # many batches
    for partition in batches.values():
        producer_ids = {producer_id for producer_id, _, _ in partition}
        assert len(producer_ids) == 1 and min(producer_ids) >= 0
        # Each batch continues the previous one's sequence: no gap, no duplicate.
        expected_sequence = 0
        for _, base_sequence, count in partition:
            assert base_sequence == expected_sequence
            expected_sequence += count


async def test_restart_with_same_data_dir_keeps_messages_and_offsets(
    local_kafka: LocalKafka, as_admin: KafkaConnection
) -> None:
    broker = local_kafka
    topic = new_topic_name()
    await ensure_topic(as_admin, topic, 6, TOPIC_CONFIG)
    sent = record_pairs(300, keys=11)
    await produce(as_admin, topic, sent[:200])
    group = f"group-{topic}"
    assert_per_key_order(await consume(as_admin, topic, group, expected=200), sent[:200])

    pid = broker.pid
    broker.stop()
    started = time.monotonic()
    assert broker.start() == as_admin.bootstrap_servers  # same ports, persisted in the data dir
    print(f"\nKafka {KAFKA_VERSION} warm restart: {time.monotonic() - started:.1f} s")
    assert broker.pid != pid

    # A fresh group sees everything from before the restart.
    assert_per_key_order(await consume(as_admin, topic, f"fresh-{topic}", expected=200), sent[:200])
    # The committed group resumes where it stopped, and the producer works after the restart.
    await produce(as_admin, topic, sent[200:])
    read_after = await consume(as_admin, topic, group, expected=100)
    assert_per_key_order(read_after, sent[200:])
    assert await committed_total(as_admin, topic, group) == len(sent)
