"""`python -m deploy.local.topics`: creates the events topic on KAFKA_BOOTSTRAP_SERVERS (Docker setup)."""

from __future__ import annotations

import asyncio

from deploy.local.kafka import TOPIC_CONFIG, ensure_topic
from services.registry.settings import RegistrySettings

PARTITIONS = 6


def main() -> None:
    settings = RegistrySettings()
    asyncio.run(ensure_topic(settings.kafka_bootstrap_servers, settings.topic, PARTITIONS, TOPIC_CONFIG))
    print(f"topic {settings.topic} ready with {PARTITIONS} partitions")


if __name__ == "__main__":
    main()
