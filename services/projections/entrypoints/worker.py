"""Entry point: `coordreg-projection-worker` runs one more projection worker in the group
(also `python -m services.projections.entrypoints.worker`).

Workers share the topic's partitions through Kafka's consumer-group protocol; each
batch's read-model rows and offsets commit together, so a rebalance or a crash never
applies an event twice or skips one.
"""

from __future__ import annotations

import asyncio
import signal

import uvloop

from services.common import tracing
from services.common.cli import parse_no_arguments
from services.common.db import create_pool, migrate
from services.common.observability import configure_logging, serve_metrics
from services.projections.adapters.kafka_consumer import ProjectionWorker
from services.projections.migrations import MIGRATIONS
from services.projections.settings import ProjectionSettings


async def run(settings: ProjectionSettings) -> None:
    envelope_verifier = settings.envelope_verifier()  # refuses production without its own key
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    serve_metrics(settings.worker_metrics_host, settings.worker_metrics_port, "projection-worker")
    pool = await create_pool(
        settings.worker_database_url or settings.database_url,
        min_size=1,
        max_size=3,
        schema=settings.read_schema,
        stateless=True,
    )
    try:
        await migrate(pool, "projections", MIGRATIONS, schema=settings.read_schema)
        worker = ProjectionWorker(
            pool,
            settings.kafka_connection(),
            settings.topic,
            settings.consumer_group,
            max_records=settings.batch_max_records,
            verifier=envelope_verifier,
        )
        await worker.run(stop)
    finally:
        await pool.close()


def main(argv: list[str] | None = None) -> None:
    parse_no_arguments(
        argv,
        ProjectionSettings,
        "Runs one more projection worker in the consumer group (no API; its metrics on "
        "PROJECTIONS_WORKER_METRICS_PORT).",
    )
    settings = ProjectionSettings()
    configure_logging(settings.log_level, settings.json_logs)
    tracing.configure(settings, "coordreg-projection-worker")
    # uvloop, as uvicorn runs the HTTP services: the relay's socket writes to Kafka were a third of
    # its CPU on asyncio's own selector loop (bench/hot.py).
    uvloop.run(run(settings))


if __name__ == "__main__":
    main()
