"""Entry point: `coordreg-relay` runs an outbox relay (leader or standby)
(also `python -m services.registry.entrypoints.relay_main`)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Awaitable, Callable

import uvloop
from aiokafka import AIOKafkaProducer

from services.common import tracing
from services.common.cli import parse_no_arguments
from services.common.db import create_pool, migrate
from services.common.observability import configure_logging, serve_metrics
from services.registry.adapters.relay import OutboxRelay
from services.registry.adapters.tree_integrator import TreeIntegrator
from services.registry.adapters.witness_feeder import WitnessFeeder
from services.registry.entrypoints.app import log_policy_from_settings, log_signer_from_settings
from services.registry.migrations import MIGRATIONS
from services.registry.settings import RegistrySettings


def nudging(
    feeder: WitnessFeeder, publish: Callable[[int, str], Awaitable[None]] | None
) -> Callable[[int, str], Awaitable[None]]:
    """`publish`, after telling the feeder a checkpoint was signed."""

    async def nudge_then_publish(size: int, signed: str) -> None:
        feeder.nudge()
        if publish is not None:
            await publish(size, signed)

    return nudge_then_publish


@contextlib.asynccontextmanager
async def checkpoint_publisher(
    settings: RegistrySettings, origin: str
) -> AsyncIterator[Callable[[int, str], Awaitable[None]] | None]:
    """Sends each new checkpoint to the checkpoints topic, or nothing when no topic is set.
    The topic is provisioned beside the events topic (coordreg-topics, the local stacks, a
    KafkaTopic in Kubernetes), with its replication: the relay's principal may write topics,
    never create them. The producer starts lazily: a broker down at start-up delays only the
    checkpoints, not the relay."""
    topic = settings.log_checkpoint_topic
    if not topic:
        yield None
        return
    producer: AIOKafkaProducer | None = None

    async def publish(size: int, signed: str) -> None:
        nonlocal producer
        if producer is None:
            started = AIOKafkaProducer(**settings.kafka_connection().kwargs(), acks="all")
            await started.start()
            producer = started
        await producer.send_and_wait(
            topic,
            signed.encode(),
            key=origin.encode(),
            headers=[("content-type", b"text/plain; charset=utf-8"), ("tree-size", str(size).encode())],
        )

    try:
        yield publish
    finally:
        if producer is not None:
            await producer.stop()


async def run(settings: RegistrySettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    serve_metrics(settings.relay_metrics_host, settings.relay_metrics_port, "relay")
    # Before anything starts: production refuses the development log key.
    signer = log_signer_from_settings(settings)
    policy = log_policy_from_settings(settings, signer)
    feeds = policy is not None and any(w.url for w in policy.witnesses)
    # The relay's, the integrator's and (when it feeds witnesses) the feeder's lock connections,
    # and room for their other queries.
    pool = await create_pool(
        settings.relay_database_url or settings.database_url, min_size=1, max_size=6 if feeds else 4
    )
    try:
        await migrate(pool, "registry", MIGRATIONS)
        relay = OutboxRelay(
            pool,
            settings.kafka_connection(),
            settings.topic,
            batch_size=settings.relay_batch_size,
            poll_seconds=settings.relay_poll_seconds,
            linger_seconds=settings.relay_linger_seconds,
            outbox_check_seconds=settings.relay_outbox_check_seconds,
        )
        async with checkpoint_publisher(settings, signer.origin) as publish:
            # The witness feeder, when the policy gives witnesses a URL (its own lock).
            feeder = WitnessFeeder.for_policy(
                pool,
                policy,
                timeout_seconds=settings.log_witness_timeout_seconds,
                backoff_max_seconds=settings.log_witness_backoff_max_seconds,
                poll_seconds=settings.log_witness_poll_seconds,
                max_skew_seconds=settings.log_cosignature_max_skew_seconds,
            )
            # The transparency log's integrator beside the relay: each leads by its own lock. A
            # checkpoint it signs wakes the feeder at once, when both lead in this process.
            integrator = TreeIntegrator(
                pool,
                signer,
                checkpoint_seconds=settings.log_checkpoint_seconds,
                publish=nudging(feeder, publish) if feeder else publish,
            )
            tasks = [relay.run(stop), integrator.run(stop), *([feeder.run(stop)] if feeder else [])]
            await asyncio.gather(*tasks)
    finally:
        await pool.close()


def main(argv: list[str] | None = None) -> None:
    parse_no_arguments(
        argv,
        RegistrySettings,
        "Runs an outbox relay: publishes the registry's committed events to Kafka in order, as the "
        "leader, or waits as a standby while another relay leads; and the transparency log's "
        "integrator, which takes them into the Merkle tree and signs checkpoints (also leader or "
        "standby); and, when the witnessing policy gives witnesses a URL, the feeder that submits "
        "each checkpoint to them (C2SP tlog-witness). Reads the registry's settings.",
    )
    settings = RegistrySettings()
    configure_logging(settings.log_level, settings.json_logs)
    tracing.configure(settings, "coordreg-relay")
    # uvloop, as uvicorn runs the HTTP services: the relay's socket writes to Kafka were a third of
    # its CPU on asyncio's own selector loop (bench/hot.py).
    uvloop.run(run(settings))


if __name__ == "__main__":
    main()
