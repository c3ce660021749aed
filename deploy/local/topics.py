"""`coordreg-topics` (or `python -m deploy.local.topics`): creates the events topic, its dead
letters and the checkpoints topic on KAFKA_BOOTSTRAP_SERVERS (the Docker setup's one-shot
`topics` service). The relay and the workers never create topics themselves: their
principals may not (docs/adr/0001)."""

from __future__ import annotations

import asyncio

from deploy.local.kafka_principals import provision
from services.common.cli import parse_no_arguments
from services.common.kafka_admin import PARTITIONS
from services.registry.settings import RegistrySettings


def main(argv: list[str] | None = None) -> None:
    parse_no_arguments(
        argv,
        RegistrySettings,
        f"Creates the events topic ({PARTITIONS} partitions, unlimited retention), its dead letters "
        "(<topic>.dlq) and the checkpoints topic on KAFKA_BOOTSTRAP_SERVERS if they do not exist, "
        "as the principal of REGISTRY_KAFKA_USERNAME (one that may create topics). Reads the "
        "registry's settings.",
    )
    settings = RegistrySettings()
    topics = [settings.topic, f"{settings.topic}.dlq", settings.log_checkpoint_topic]
    asyncio.run(
        provision(
            settings.kafka_connection(),
            settings.topic,
            checkpoint_topic=settings.log_checkpoint_topic,
            grant=False,
        )
    )
    print(f"topics {', '.join(t for t in topics if t)} ready ({settings.topic}: {PARTITIONS} partitions)")


if __name__ == "__main__":
    main()
