"""The README's consumer's guide: its connecting block, run as written with the read-only
consumer principal that `make run` prints, against the local broker."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import GroupAuthorizationFailedError, TopicAuthorizationFailedError

from tests.support.kafka import Brokers

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"


def connect_snippet() -> Callable[..., AIOKafkaConsumer]:
    section = README.read_text(encoding="utf-8").split("## Consumer's guide", 1)[1].split("\n## ", 1)[0]
    [code] = [
        block
        for block in re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
        if "def connect" in block
    ]
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md (consumer's guide, connecting)", "exec"), namespace)
    connect: Callable[..., AIOKafkaConsumer] = namespace["connect"]
    return connect


async def test_the_read_only_principal_reads_with_the_guides_block(kafka: Brokers, topic: str) -> None:
    if kafka.secrets is None:
        pytest.fail("this test needs the local broker's principals: unset KAFKA_BOOTSTRAP_SERVERS")
    producer = AIOKafkaProducer(**kafka.relay.kwargs(), acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, b'{"id": "x"}', key=b"agreement")
    finally:
        await producer.stop()
    security = kafka.consumer.security
    arguments = (kafka.bootstrap_servers, security.username, security.secret(), security.ca_file)

    consumer = connect_snippet()(*arguments, topic=topic)
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=10000)
        assert [record.value for batch in batches.values() for record in batch] == [b'{"id": "x"}']
    finally:
        await consumer.stop()

    # Read-only: the same credentials may not write, nor read under another group.
    writer = AIOKafkaProducer(**kafka.consumer.kwargs())
    await writer.start()
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            await writer.send_and_wait(topic, b"forged", key=b"agreement")
    finally:
        await writer.stop()
    other = AIOKafkaConsumer(
        topic,
        **kafka.consumer.kwargs(),
        group_id=f"projections-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
    )
    try:
        with pytest.raises(GroupAuthorizationFailedError):
            await other.start()
            await other.getmany(timeout_ms=5000)
            await other.commit()
    finally:
        await other.stop()
