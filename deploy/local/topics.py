"""`coordreg-topics` (or `python -m deploy.local.topics`): creates the events topic on
KAFKA_BOOTSTRAP_SERVERS (the Docker setup's one-shot `topics` service)."""

from __future__ import annotations

import asyncio

from services.common.cli import parse_no_arguments
from services.common.kafka_admin import PARTITIONS, TOPIC_CONFIG, ensure_topic
from services.registry.settings import RegistrySettings


def main(argv: list[str] | None = None) -> None:
    parse_no_arguments(
        argv,
        RegistrySettings,
        f"Creates the events topic ({PARTITIONS} partitions, unlimited retention) on "
        "KAFKA_BOOTSTRAP_SERVERS if it does not exist. Reads the registry's settings.",
    )
    settings = RegistrySettings()
    asyncio.run(ensure_topic(settings.kafka_bootstrap_servers, settings.topic, PARTITIONS, TOPIC_CONFIG))
    print(f"topic {settings.topic} ready with {PARTITIONS} partitions")


if __name__ == "__main__":
    main()
