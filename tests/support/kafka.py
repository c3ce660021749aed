"""The tests' broker as each principal reaches it, and reading a topic back with a plain
consumer: what any event consumer would see."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer

from deploy.local.kafka_principals import (
    ADMIN,
    AUDIT,
    CONSUMER,
    CONSUMER_GROUP_PREFIX,
    PROJECTIONS,
    RELAY,
    KafkaSecrets,
)
from services.common.kafka_security import KafkaConnection, KafkaSecurity


@dataclass(frozen=True)
class Brokers:
    """The session's broker: a local one with a principal per job (deploy/local/kafka_principals.py),
    or the one KAFKA_BOOTSTRAP_SERVERS names, where every job is the principal the KAFKA_*
    variables give (`external`)."""

    bootstrap_servers: str
    secrets: KafkaSecrets | None = None
    external: KafkaSecurity | None = None

    def as_principal(self, principal: str) -> KafkaConnection:
        if self.secrets is not None:
            return self.secrets.connection(self.bootstrap_servers, principal)
        return KafkaConnection(
            bootstrap_servers=self.bootstrap_servers, security=self.external or KafkaSecurity()
        )

    @property
    def admin(self) -> KafkaConnection:
        return self.as_principal(ADMIN)

    @property
    def relay(self) -> KafkaConnection:
        return self.as_principal(RELAY)

    @property
    def projections(self) -> KafkaConnection:
        return self.as_principal(PROJECTIONS)

    @property
    def audit(self) -> KafkaConnection:
        return self.as_principal(AUDIT)

    @property
    def consumer(self) -> KafkaConnection:
        return self.as_principal(CONSUMER)


def settings_of(kafka: KafkaConnection) -> dict[str, Any]:
    """The ServiceSettings fields that make a service connect as `kafka`."""
    security = kafka.security
    return {
        "kafka_bootstrap_servers": kafka.bootstrap_servers,
        "kafka_security_protocol": security.protocol,
        "kafka_sasl_mechanism": security.mechanism,
        "kafka_username": security.username,
        "kafka_password": security.password,
        "kafka_password_file": security.password_file,
        "kafka_ca_file": security.ca_file,
    }


async def read_topic(kafka: KafkaConnection, topic: str, expected: int, timeout: float = 30) -> list[Any]:
    """Reads from the beginning until `expected` records arrived (or the timeout); as an event
    consumer would, in a group of the consumer principal's prefix."""
    consumer = AIOKafkaConsumer(
        topic,
        **kafka.kwargs(),
        group_id=f"{CONSUMER_GROUP_PREFIX}reader-{uuid.uuid4().hex[:8]}",
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
