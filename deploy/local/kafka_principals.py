"""The local brokers' principals, their secrets and their ACLs (docs/adr/0001, docs/SECURITY.md
"Kafka principals").

At the first start of a data dir this mints, under its `security/` folder (mode 0700, never
committed): a CA, the brokers' certificate for 127.0.0.1 and localhost signed by it, and a
random SCRAM-SHA-512 password per principal, one file each. The passwords go into the KRaft
metadata when the storage is formatted (`--add-scram`); the ACLs are written by the admin
principal once the broker answers. deploy/kubernetes/base/kafka.yaml grants the same.
"""

from __future__ import annotations

import asyncio
import datetime
import fcntl
import ipaddress
import os
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from aiokafka.client import AIOKafkaClient
from aiokafka.errors import for_code
from aiokafka.protocol.admin import CreateAclsRequest
from coordreg_contracts.topic import CHECKPOINT_TOPIC
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from services.common.kafka_admin import PARTITIONS, TOPIC_CONFIG, ensure_topic
from services.common.kafka_security import KafkaConnection, KafkaSecurity

# Super users: the stack's provisioning (topics, ACLs) and the brokers themselves.
ADMIN = "coordreg-admin"
BROKER = "coordreg-broker"
# One principal per job.
RELAY = "coordreg-relay"
PROJECTIONS = "coordreg-projections"
AUDIT = "coordreg-audit"
# An event consumer outside the platform: reads, nothing else.
CONSUMER = "coordreg-consumer"
PRINCIPALS = (ADMIN, BROKER, RELAY, PROJECTIONS, AUDIT, CONSUMER)
SUPER_USERS = (ADMIN, BROKER)

# Every topic the project reads or writes starts so: agreements.events.v1, its dead letters,
# agreements.checkpoints.v1, and the tests' agreements.events.test-<hex>.
TOPIC_PREFIX = "agreements."
# relay_transactional_id(topic): "coordreg-relay.<topic>".
TRANSACTIONAL_ID_PREFIX = "coordreg-relay."
PROJECTIONS_GROUP_PREFIX = "projections"
CONSUMER_GROUP_PREFIX = "coordreg-consumer."

_HOSTS = ("127.0.0.1", "localhost")
_VALIDITY = datetime.timedelta(days=3650)


class Resource(IntEnum):
    # Kafka's org.apache.kafka.common.resource.ResourceType codes.
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5


class Pattern(IntEnum):
    LITERAL = 3
    PREFIXED = 4


class Operation(IntEnum):
    READ = 3
    WRITE = 4
    CREATE = 5
    DESCRIBE = 8
    IDEMPOTENT_WRITE = 12


_ALLOW = 3


@dataclass(frozen=True)
class Acl:
    principal: str
    resource: Resource
    name: str
    pattern: Pattern
    operation: Operation


def _grant(
    principal: str, resource: Resource, name: str, pattern: Pattern, operations: Iterable[Operation]
) -> list[Acl]:
    return [Acl(f"User:{principal}", resource, name, pattern, op) for op in operations]


def standing_acls() -> list[Acl]:
    """What each principal may do on every topic of the project (the dead letters: topic_acls)."""
    read, write, describe = Operation.READ, Operation.WRITE, Operation.DESCRIBE
    topics = (Resource.TOPIC, TOPIC_PREFIX, Pattern.PREFIXED)
    return [
        # The relay writes the events and checkpoints under its transactional id.
        *_grant(RELAY, *topics, (write, describe)),
        *_grant(
            RELAY, Resource.TRANSACTIONAL_ID, TRANSACTIONAL_ID_PREFIX, Pattern.PREFIXED, (write, describe)
        ),
        *_grant(RELAY, Resource.CLUSTER, "kafka-cluster", Pattern.LITERAL, (Operation.IDEMPOTENT_WRITE,)),
        # A projection worker reads in its own groups.
        *_grant(PROJECTIONS, *topics, (read, describe)),
        *_grant(PROJECTIONS, Resource.GROUP, PROJECTIONS_GROUP_PREFIX, Pattern.PREFIXED, (read, describe)),
        # The audit tool reads without a group.
        *_grant(AUDIT, *topics, (read, describe)),
        # An event consumer reads in groups of its own prefix.
        *_grant(CONSUMER, *topics, (read, describe)),
        *_grant(CONSUMER, Resource.GROUP, CONSUMER_GROUP_PREFIX, Pattern.PREFIXED, (read, describe)),
    ]


def topic_acls(events_topic: str) -> list[Acl]:
    """A worker creates (if missing) and writes the dead letters of the events topic it reads:
    that topic alone, so it can never write the events themselves."""
    return _grant(
        PROJECTIONS,
        Resource.TOPIC,
        f"{events_topic}.dlq",
        Pattern.LITERAL,
        (Operation.CREATE, Operation.WRITE, Operation.DESCRIBE),
    )


async def create_acls(admin: KafkaConnection, acls: Sequence[Acl]) -> None:
    """Adds the ACLs (an existing one is left as it is). aiokafka's admin client has no ACL
    call, so its client sends Kafka's CreateAcls request, one binding each."""
    client = AIOKafkaClient(**admin.kwargs(), request_timeout_ms=10000)
    await client.bootstrap()
    try:
        node = client.get_random_node()
        requests = [
            CreateAclsRequest(acl.resource, acl.name, acl.pattern, acl.principal, "*", acl.operation, _ALLOW)
            for acl in acls
        ]
        responses = await asyncio.gather(*(client.send(node, request) for request in requests))
    finally:
        await client.close()
    for acl, response in zip(acls, responses, strict=True):
        for code, message in response.creation_responses:
            if code != 0:
                raise for_code(code)(f"creating ACL {acl}: {message}")


@dataclass(frozen=True)
class KafkaSecrets:
    """The CA, the brokers' certificate and the principals' passwords of one local broker or cluster."""

    directory: Path

    @property
    def ca_file(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def broker_keystore(self) -> Path:
        """The brokers' private key then certificate chain, PEM (Kafka's ssl.keystore.type=PEM)."""
        return self.directory / "broker-keystore.pem"

    def password_file(self, principal: str) -> Path:
        return self.directory / "passwords" / principal

    def password(self, principal: str) -> str:
        return self.password_file(principal).read_text().strip()

    def security(self, principal: str) -> KafkaSecurity:
        return KafkaSecurity(
            username=principal, password_file=str(self.password_file(principal)), ca_file=str(self.ca_file)
        )

    def connection(self, bootstrap_servers: str, principal: str) -> KafkaConnection:
        return KafkaConnection(bootstrap_servers=bootstrap_servers, security=self.security(principal))

    def scram_arguments(self) -> list[str]:
        """kafka-storage format's arguments that put every principal's credential in the metadata."""
        arguments = []
        for principal in PRINCIPALS:
            arguments += [
                "--add-scram",
                f"SCRAM-SHA-512=[name={principal},password={self.password(principal)}]",
            ]
        return arguments

    def ensure(self) -> KafkaSecrets:
        """Mint whatever is missing (once: two processes starting at once share one lock)."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        with (self.directory / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not self.ca_file.exists() or not self.broker_keystore.exists():
                self._mint_certificates()
            for principal in PRINCIPALS:
                path = self.password_file(principal)
                if not path.exists():
                    path.parent.mkdir(mode=0o700, exist_ok=True)
                    _write_private(path, secrets.token_hex(24) + "\n")
        return self

    def _mint_certificates(self) -> None:
        now = datetime.datetime.now(datetime.UTC)
        ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "coordreg local Kafka CA")])
        ca = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                    encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .sign(ca_key, hashes.SHA256())
        )  # fmt: skip
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        names: list[x509.GeneralName] = [
            x509.IPAddress(ipaddress.ip_address(_HOSTS[0])),
            x509.DNSName(_HOSTS[1]),
        ]
        # The brokers present it to clients and, on the controller listener, to each other
        # (mutual TLS there: its subject is the principal BROKER).
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, BROKER)]))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        pem = serialization.Encoding.PEM
        key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        _write_private(
            self.broker_keystore, (key_pem + cert.public_bytes(pem) + ca.public_bytes(pem)).decode()
        )
        # The CA's key is not kept: nothing else is ever signed with it.
        self.ca_file.write_text(ca.public_bytes(pem).decode())


def _write_private(path: Path, text: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)


async def provision(
    admin: KafkaConnection,
    topic: str,
    *,
    replication: int = 1,
    config: dict[str, str] | None = None,
    checkpoint_topic: str = CHECKPOINT_TOPIC,
    grant: bool = True,
) -> None:
    """The events topic, its dead letters and the checkpoints topic, all with one replication
    (the relay and the workers may not create topics), and the dead letters' grant (`grant`:
    on a broker with this module's principals)."""
    settings = config or TOPIC_CONFIG
    await ensure_topic(admin, topic, PARTITIONS, settings, replication)
    await ensure_topic(admin, f"{topic}.dlq", 1, settings, replication)
    if checkpoint_topic:
        await ensure_topic(admin, checkpoint_topic, 1, settings, replication)
    if grant:
        await create_acls(admin, topic_acls(topic))
