"""Topic administration shared by the services, the local stack and the tests."""

from __future__ import annotations

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from services.common.kafka_security import KafkaConnection

# The events topic's partitions: the unit of ordering (key = agreement id) and of the
# projections' parallelism. Fixed once the topic exists: more partitions would move keys.
PARTITIONS = 6

TOPIC_CONFIG: dict[str, str] = {
    "retention.ms": "-1",
    "retention.bytes": "-1",
    "cleanup.policy": "delete",
    "min.insync.replicas": "1",
}


# The cluster's topic (deploy/local/kafka_cluster.py, deploy/kubernetes): every record on three
# brokers' logs, an acks=all write refused unless two have it, and never an unclean leader.
CLUSTER_REPLICATION = 3
CLUSTER_TOPIC_CONFIG: dict[str, str] = {
    **TOPIC_CONFIG,
    "min.insync.replicas": "2",
    "unclean.leader.election.enable": "false",
}


async def ensure_topic(
    kafka: KafkaConnection,
    name: str,
    partitions: int,
    config: dict[str, str] | None = None,
    replication_factor: int = 1,
) -> None:
    """Create topic `name` unless it exists; an existing one is left as it is."""
    admin = AIOKafkaAdminClient(**kafka.kwargs())
    try:
        await admin.start()
        response = await admin.create_topics(
            [
                NewTopic(
                    name,
                    num_partitions=partitions,
                    replication_factor=replication_factor,
                    topic_configs=config or {},
                )
            ]
        )
    finally:
        await admin.close()
    for topic_error in response.topic_errors:
        code = int(topic_error[1])
        if code not in (0, TopicAlreadyExistsError.errno):
            message = topic_error[2] if len(topic_error) > 2 else ""
            raise for_code(code)(f"creating topic {name!r}: {message}")
