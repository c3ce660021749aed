"""The alerting metrics say what is true: the outbox backlog and age while rows wait and
after the drain, each partition's lag during and after a catch-up, parked and dead-lettered
events, and errors counted under their route's template (never the raw path)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from prometheus_client import REGISTRY, generate_latest

from services.common.db import create_pool, migrate
from services.common.kafka_admin import TOPIC_CONFIG, ensure_topic
from services.projections.adapters.kafka_consumer import ProjectionWorker
from services.projections.migrations import MIGRATIONS
from services.registry.adapters.outbox_metrics import check_outbox
from services.registry.adapters.relay import OutboxRelay
from tests.integration.test_projection_exactly_once import Record, topic_records
from tests.support.builders import sign_body
from tests.support.kafka import Brokers
from tests.support.stack import Stack, running_stack


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def eventually(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


@pytest.fixture
async def registry_alone(database_url: str, kafka: Brokers, topic: str) -> AsyncIterator[Stack]:
    async with running_stack(database_url, kafka, topic, relay=False, projections=False) as running:
        yield running


@pytest.fixture
async def with_read_models(database_url: str, kafka: Brokers, topic: str) -> AsyncIterator[Stack]:
    """Registry and relay; the read models' schema, and no worker: each test runs its own."""
    async with running_stack(database_url, kafka, topic, projections=False) as running:
        running.read_pool = await create_pool(database_url, min_size=1, max_size=3, schema="projections")
        await migrate(running.read_pool, "projections", MIGRATIONS, schema="projections")
        yield running
        await running.read_pool.close()


async def test_the_outbox_backlog_and_age_count_what_waits_and_fall_to_zero_after_the_drain(
    registry_alone: Stack,
) -> None:
    stack = registry_alone
    for _ in range(2):
        await stack.sign(sign_body())
    waiting = await stack.pool.fetchval("SELECT count(*) FROM registry.outbox")
    assert waiting >= 2
    await asyncio.sleep(0.1)
    backlog, age = await check_outbox(stack.pool)
    assert backlog == waiting == value("relay_outbox_backlog")
    assert age >= 0.1 and value("relay_outbox_oldest_age_seconds") == age

    stop = asyncio.Event()
    relay = OutboxRelay(
        stack.pool, stack.kafka.relay, stack.topic, poll_seconds=0.05, outbox_check_seconds=0.05
    )
    task = asyncio.create_task(relay.run(stop))
    try:
        await eventually(lambda: value("relay_outbox_backlog") == 0, "the backlog gauge never fell to 0")
        assert value("relay_outbox_oldest_age_seconds") == 0
        assert value("relay_is_leader") == 1
        assert await stack.pool.fetchval("SELECT count(*) FROM registry.outbox") == 0
    finally:
        stop.set()
        await task
    assert value("relay_is_leader") == 0


class SlowWorker(ProjectionWorker):
    """Applies one record at a time, slowly, and updates the lag gauges after every batch."""

    async def apply_batch(self, batches: dict[TopicPartition, list[Any]]) -> None:
        await asyncio.sleep(0.05)
        await super().apply_batch(batches)


async def test_each_partition_shows_its_lag_and_falls_to_zero_after_the_catch_up(
    with_read_models: Stack,
) -> None:
    stack = with_read_models
    for _ in range(4):
        await stack.sign(sign_body())
    stored = await stack.pool.fetchval("SELECT count(*) FROM registry.events")
    deadline = time.monotonic() + 30
    while await stack.pool.fetchval("SELECT count(*) FROM registry.outbox"):
        assert time.monotonic() < deadline, "the relay did not publish"
        await asyncio.sleep(0.05)

    worker = SlowWorker(
        stack.read_pool, stack.kafka.projections, stack.topic, "projections-g-lag", max_records=1
    )
    worker.partition_lag.every_seconds = 0
    partitions = [str(p) for p in range(6)]
    highest: dict[str, float] = {}
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        deadline = time.monotonic() + 60
        while worker.seen < stored or any(
            REGISTRY.get_sample_value("projection_consumer_lag_records", {"partition": p}) != 0
            for p in partitions
        ):
            for p in partitions:
                highest[p] = max(highest.get(p, 0), value("projection_consumer_lag_records", partition=p))
            assert time.monotonic() < deadline, f"lag never fell to 0: {generate_latest().decode()[-3000:]}"
            await asyncio.sleep(0.02)
        assert sum(highest.values()) > 0, "behind while catching up"
        assert all(value("projection_lag_seconds", partition=p) == 0 for p in partitions)
    finally:
        stop.set()
        await task
    assert REGISTRY.get_sample_value("projection_consumer_lag_records", {"partition": "0"}) is None, (
        "a stopped worker exports no lag for partitions it no longer owns"
    )


async def test_parked_and_dead_lettered_events_are_counted(with_read_models: Stack) -> None:
    stack = with_read_models
    _, mine, _ = await topic_records(stack, reports=2)
    tp = TopicPartition(stack.topic, mine[0].partition)
    first, _, third = mine
    worker = ProjectionWorker(stack.read_pool, stack.kafka.projections, stack.topic, "projections-g-dead")
    parked = value("projection_events_total", outcome="parked")
    await worker.apply_batch({tp: [first, third]})
    assert value("projection_events_total", outcome="parked") == parked + 1
    assert value("projection_parked_events") == 1

    dead = value("projection_dead_letters_total")
    worker.producer = AIOKafkaProducer(**stack.kafka.admin.kwargs())
    await ensure_topic(stack.kafka.admin, worker.dead_letter_topic, 1, TOPIC_CONFIG)
    await worker.producer.start()
    try:
        await worker.apply_batch({tp: [Record(b'{"not": "an envelope"}', third.offset + 1, key=b"broken")]})
    finally:
        await worker.producer.stop()
    assert value("projection_dead_letters_total") == dead + 1
    await worker.partition_lag.update(_NoConsumer(), stack.read_pool)
    assert value("projection_dead_letters_stored") == 1 and value("projection_parked_events") == 1


class _NoConsumer:
    def assignment(self) -> set[TopicPartition]:
        return set()


async def test_an_error_is_counted_under_its_route_template_and_problem_type(registry_alone: Stack) -> None:
    stack = registry_alone
    route = "/v1/agreements/{agreement_id}"
    labels = {"service": "registry", "method": "GET", "route": route, "status": "404", "problem": "not-found"}
    before = value("http_request_errors_total", **labels)
    response = await stack.registry.get("/v1/agreements/metrics-probe-1234")
    assert response.status_code == 404
    assert value("http_request_errors_total", **labels) == before + 1
    assert value("http_requests_total", service="registry", method="GET", route=route, status="404") >= 1

    invalid = {"service": "registry", "method": "POST", "route": "/v1/agreements", "status": "422"}
    before = value("http_request_errors_total", **invalid, problem="validation")
    assert (await stack.registry.post("/v1/agreements", json={"title": 1})).status_code == 422
    assert value("http_request_errors_total", **invalid, problem="validation") == before + 1

    # A method nobody routes is one series, whatever the caller sends (uvicorn's parser refuses
    # made-up ones itself; WebDAV's it lets through).
    assert (await stack.registry.request("PROPFIND", "/v1/agreements")).status_code == 405
    assert (
        value("http_requests_total", service="registry", method="OTHER", route="/v1/agreements", status="405")
        >= 1
    )

    exposition = generate_latest().decode()
    assert "metrics-probe-1234" not in exposition and "PROPFIND" not in exposition
