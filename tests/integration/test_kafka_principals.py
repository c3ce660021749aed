"""Kafka authenticates every client and holds each principal to its own job (docs/adr/0001,
docs/SECURITY.md "Kafka principals"), tried against the broker that local runs provision.

Each refusal is shown beside the same operation done by the principal whose job it is, so a
test cannot pass because the operation fails for some other reason.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    KafkaError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
)
from pydantic import SecretStr

from deploy.local.kafka import TOPIC_CONFIG, LocalKafka, ensure_topic
from deploy.local.kafka_principals import (
    ADMIN,
    AUDIT,
    CONSUMER,
    PROJECTIONS,
    RELAY,
    KafkaSecrets,
    provision,
)
from services.common.kafka_security import KafkaConnection, KafkaSecurity
from services.registry.adapters.relay import make_producer, relay_transactional_id

pytestmark = pytest.mark.integration

CACHE = Path(__file__).resolve().parents[2] / ".cache"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    local = LocalKafka(tmp_path_factory.mktemp("kafka-principals"), CACHE)
    local.start()
    try:
        yield local
    finally:
        local.stop()


@pytest.fixture
async def topic(broker: LocalKafka) -> AsyncIterator[str]:
    name = f"agreements.events.test-{uuid.uuid4().hex[:10]}"
    await provision(broker.admin, name, checkpoint_topic="")
    yield name


async def produce_one(kafka: KafkaConnection, topic: str) -> None:
    producer = AIOKafkaProducer(**kafka.kwargs(), acks="all", request_timeout_ms=10000)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"forged", key=b"agreement")
    finally:
        await producer.stop()


async def consume_in_group(kafka: KafkaConnection, topic: str, group: str) -> int:
    """Joins `group`, reads from the beginning for a moment, commits; the records read."""
    consumer = AIOKafkaConsumer(
        topic, **kafka.kwargs(), group_id=group, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=3000)
        await consumer.commit()
        return sum(len(batch) for batch in batches.values())
    finally:
        await consumer.stop()


async def connects(kafka: KafkaConnection) -> bool:
    admin = AIOKafkaAdminClient(**kafka.kwargs(), request_timeout_ms=5000)
    try:
        await admin.start()
        return bool((await admin.describe_cluster())["brokers"])
    finally:
        await admin.close()


async def test_the_brokers_own_principals_connect(broker: LocalKafka) -> None:
    for principal in (ADMIN, RELAY, PROJECTIONS, AUDIT, CONSUMER):
        assert await connects(broker.connection(principal)), principal


async def test_an_unauthenticated_client_cannot_connect(broker: LocalKafka) -> None:
    plaintext = KafkaConnection(
        bootstrap_servers=broker.bootstrap_servers, security=KafkaSecurity(protocol="PLAINTEXT")
    )
    with pytest.raises((KafkaConnectionError, KafkaError, OSError)):
        await connects(plaintext)


async def test_a_wrong_password_cannot_connect(broker: LocalKafka) -> None:
    relay = broker.connection(RELAY)
    wrong = relay.security.model_copy(
        update={"password_file": "", "password": SecretStr("not-" + relay.security.secret())}
    )
    with pytest.raises((KafkaConnectionError, KafkaError)):
        await connects(relay.model_copy(update={"security": wrong}))
    # An unknown user neither.
    stranger = wrong.model_copy(update={"username": "coordreg-stranger"})
    with pytest.raises((KafkaConnectionError, KafkaError)):
        await connects(relay.model_copy(update={"security": stranger}))


async def test_a_broker_certificate_from_another_ca_is_not_trusted(
    broker: LocalKafka, tmp_path: Path
) -> None:
    # The same principal and password, but trusting only a CA minted elsewhere: the broker's
    # certificate does not verify, so the password is never sent.
    other = KafkaSecrets(tmp_path / "other").ensure()
    relay = broker.connection(RELAY)
    untrusting = relay.security.model_copy(update={"ca_file": str(other.ca_file)})
    with pytest.raises((KafkaConnectionError, KafkaError, OSError)):
        await connects(relay.model_copy(update={"security": untrusting}))


async def test_the_projections_principal_cannot_produce_to_the_events_topic(
    broker: LocalKafka, topic: str
) -> None:
    await produce_one(broker.connection(PROJECTIONS), f"{topic}.dlq")  # its own job: dead letters
    with pytest.raises(TopicAuthorizationFailedError):
        await produce_one(broker.connection(PROJECTIONS), topic)
    # Nor may the read-only consumer or the audit tool.
    for principal in (CONSUMER, AUDIT):
        with pytest.raises(TopicAuthorizationFailedError):
            await produce_one(broker.connection(principal), topic)


async def test_a_worker_cannot_read_under_another_group(broker: LocalKafka, topic: str) -> None:
    await produce_one(broker.admin, topic)
    worker = broker.connection(PROJECTIONS)
    assert await consume_in_group(worker, topic, f"projections-{uuid.uuid4().hex[:6]}") == 1
    for group in (f"coordreg-consumer.{uuid.uuid4().hex[:6]}", f"audit-{uuid.uuid4().hex[:6]}"):
        with pytest.raises(GroupAuthorizationFailedError):
            await consume_in_group(worker, topic, group)
    # The read-only consumer reads in its own groups, not in the projections'.
    consumer = broker.connection(CONSUMER)
    assert await consume_in_group(consumer, topic, f"coordreg-consumer.{uuid.uuid4().hex[:6]}") == 1
    with pytest.raises(GroupAuthorizationFailedError):
        await consume_in_group(consumer, topic, f"projections-{uuid.uuid4().hex[:6]}")


async def test_nobody_but_the_relay_can_use_its_transactional_id(broker: LocalKafka, topic: str) -> None:
    transactional_id = relay_transactional_id(topic)
    relay = make_producer(broker.connection(RELAY), transactional_id)
    await relay.start()
    try:
        async with relay.transaction():
            await relay.send_and_wait(topic, b"event", key=b"agreement")
    finally:
        await relay.stop()
    for principal in (PROJECTIONS, AUDIT, CONSUMER):
        impostor = make_producer(broker.connection(principal), transactional_id)
        with pytest.raises(TransactionalIdAuthorizationFailed):
            await impostor.start()  # InitProducerId for that id: refused
        await impostor.stop()


async def test_the_relay_may_write_but_not_create_topics(broker: LocalKafka) -> None:
    name = f"agreements.events.test-{uuid.uuid4().hex[:10]}"
    with pytest.raises(KafkaError):
        await ensure_topic(broker.connection(RELAY), name, 1, TOPIC_CONFIG)
    await ensure_topic(broker.admin, name, 1, TOPIC_CONFIG)
    await produce_one(broker.connection(RELAY), name)
