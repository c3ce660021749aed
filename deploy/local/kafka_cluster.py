"""Three KRaft nodes (each broker and controller) from the same jars as LocalKafka: the local
cluster of `make cluster` and of the cluster fault scenarios (tests/cluster).

The controllers vote among themselves (a static quorum of three: any two elect a leader), the
internal topics have three replicas with two in sync for a write, and no replica that fell
behind may become leader. One node can be killed and restarted on its own data.
The nodes share one CA, certificate and set of principals (deploy/local/kafka_principals.py),
kept in the cluster's `security/` folder: the same listeners and ACLs as a single broker.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from deploy.local.kafka import LocalKafka, Quorum, new_cluster_id
from deploy.local.kafka_principals import ADMIN, KafkaSecrets, create_acls, standing_acls
from deploy.local.processes import LocalServer
from services.common.kafka_security import KafkaConnection


class LocalKafkaCluster(LocalServer):
    def __init__(
        self, data_dir: Path, cache_root: Path, size: int = 3, ports: list[int] | None = None
    ) -> None:
        """`ports`: each node's client port then its controller port (2 × size), or free ones."""
        self.data_dir = data_dir.resolve()
        self.secrets = KafkaSecrets(self.data_dir / "security")
        pairs: list[tuple[int | None, int | None]] = [
            (ports[2 * i], ports[2 * i + 1]) if ports else (None, None) for i in range(size)
        ]
        self.nodes = [
            LocalKafka(
                self.data_dir / f"node-{i + 1}",
                cache_root,
                port,
                controller,
                node_id=i + 1,
                secrets=self.secrets,
            )
            for i, (port, controller) in enumerate(pairs)
        ]

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(node.bootstrap_servers for node in self.nodes)

    def connection(self, principal: str) -> KafkaConnection:
        return self.secrets.connection(self.bootstrap_servers, principal)

    @property
    def admin(self) -> KafkaConnection:
        return self.connection(ADMIN)

    def _quorum(self) -> Quorum:
        # The cluster id is chosen once and kept: every node's storage is formatted with it.
        saved = self.data_dir / "cluster.id"
        if not saved.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            saved.write_text(new_cluster_id() + "\n")
        voters = ",".join(f"{node.node_id}@{node.controller_address}" for node in self.nodes)
        return Quorum(saved.read_text().strip(), voters, replication=len(self.nodes), min_insync=2)

    def start(self, timeout: float = 240) -> str:
        quorum = self._quorum()
        for node in self.nodes:
            node.quorum = quorum
        # All at once: no node is ready before a majority of controllers has voted.
        for node in self.nodes:
            node.launch()
        for node in self.nodes:
            node.wait_ready(timeout)
        self.wait_brokers(len(self.nodes), timeout)
        asyncio.run(create_acls(self.admin, standing_acls()))
        return self.bootstrap_servers

    def node(self, node_id: int) -> LocalKafka:
        return self.nodes[node_id - 1]

    def stop_leftover(self) -> list[int]:
        return [pid for node in self.nodes if (pid := node.stop_leftover()) is not None]

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def wait_brokers(self, count: int, timeout: float = 120) -> None:
        """Until `count` brokers are registered with the controllers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if asyncio.run(self._broker_count()) >= count:
                return
            time.sleep(0.2)
        raise TimeoutError(f"fewer than {count} Kafka brokers registered after {timeout:.0f} s")

    async def _broker_count(self) -> int:
        admin = AIOKafkaAdminClient(**self.admin.kwargs(), request_timeout_ms=5000)
        try:
            await admin.start()
            return len((await admin.describe_cluster())["brokers"])
        except (KafkaError, OSError, TimeoutError):
            return 0
        finally:
            await admin.close()


async def _describe(kafka: KafkaConnection, topic: str) -> list[dict[str, object]]:
    """The topic's partitions as one live broker describes them: each address in turn, since
    the admin client gives up on a node that is down instead of asking another."""
    failure: Exception | None = None
    for address in kafka.bootstrap_servers.split(","):
        admin = AIOKafkaAdminClient(**kafka.at(address).kwargs(), request_timeout_ms=5000)
        try:
            await admin.start()
            described = await admin.describe_topics([topic])
            partitions: list[dict[str, object]] = described[0]["partitions"]
            return partitions
        except (KafkaError, OSError, TimeoutError) as exc:
            failure = exc
        finally:
            await admin.close()
    raise RuntimeError(f"no broker of {kafka.bootstrap_servers} could describe {topic}: {failure}")


async def partition_leaders(kafka: KafkaConnection, topic: str) -> dict[int, int]:
    """Partition → the node id that leads it now (-1: none)."""
    return {int(str(p["partition"])): int(str(p["leader"])) for p in await _describe(kafka, topic)}


async def in_sync_replicas(kafka: KafkaConnection, topic: str) -> dict[int, list[int]]:
    """Partition → the node ids of its in-sync replicas."""
    described = await _describe(kafka, topic)
    return {int(str(p["partition"])): sorted(int(r) for r in p["isr"]) for p in described}  # type: ignore[attr-defined]


def busiest_leader(leaders: dict[int, int]) -> int:
    """The node that leads the most partitions."""
    return Counter(leaders.values()).most_common(1)[0][0]
