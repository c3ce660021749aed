"""Entry point: `coordreg-relay` runs an outbox relay (leader or standby)
(also `python -m services.registry.entrypoints.relay_main`)."""

from __future__ import annotations

import asyncio
import signal

from services.common import tracing
from services.common.cli import parse_no_arguments
from services.common.db import create_pool, migrate
from services.common.observability import configure_logging, serve_metrics
from services.registry.adapters.relay import OutboxRelay
from services.registry.adapters.tree_integrator import TreeIntegrator
from services.registry.entrypoints.app import log_signer_from_settings
from services.registry.migrations import MIGRATIONS
from services.registry.settings import RegistrySettings


async def run(settings: RegistrySettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    serve_metrics(settings.relay_metrics_host, settings.relay_metrics_port, "relay")
    # Before anything starts: production refuses the development log key.
    signer = log_signer_from_settings(settings)
    pool = await create_pool(settings.database_url, min_size=1, max_size=4)
    try:
        await migrate(pool, "registry", MIGRATIONS)
        relay = OutboxRelay(
            pool,
            settings.kafka_bootstrap_servers,
            settings.topic,
            batch_size=settings.relay_batch_size,
            poll_seconds=settings.relay_poll_seconds,
            linger_seconds=settings.relay_linger_seconds,
            outbox_check_seconds=settings.relay_outbox_check_seconds,
        )
        # The transparency log's integrator beside the relay: each leads by its own lock.
        integrator = TreeIntegrator(pool, signer, checkpoint_seconds=settings.log_checkpoint_seconds)
        await asyncio.gather(relay.run(stop), integrator.run(stop))
    finally:
        await pool.close()


def main(argv: list[str] | None = None) -> None:
    parse_no_arguments(
        argv,
        RegistrySettings,
        "Runs an outbox relay: publishes the registry's committed events to Kafka in order, as the "
        "leader, or waits as a standby while another relay leads; and the transparency log's "
        "integrator, which takes them into the Merkle tree and signs checkpoints (also leader or "
        "standby). Reads the registry's settings.",
    )
    settings = RegistrySettings()
    configure_logging(settings.log_level, settings.json_logs)
    tracing.configure(settings, "coordreg-relay")
    asyncio.run(run(settings))


if __name__ == "__main__":
    main()
