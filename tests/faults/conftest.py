"""The fault suite's own PostgreSQL and Kafka (it stops and restarts them), and its figures table."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from deploy.local.db_accounts import prepare_database
from deploy.local.kafka import TOPIC_CONFIG, LocalKafka, ensure_topic
from deploy.local.kafka_principals import create_acls, topic_acls
from deploy.local.postgres import LocalPostgres
from tests.faults.harness import STARTED_WITHIN, Env
from tests.support.figures import Figures
from tests.support.kafka import Brokers
from tests.support.stack import session_passwords

ROOT = Path(__file__).resolve().parents[2]
FIGURES = Figures("faults")
# One figure of the table printed at the end of `make test-faults`.
record = FIGURES.record


@dataclass
class Infra:
    postgres: LocalPostgres
    kafka: LocalKafka
    url: str
    brokers: Brokers


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infra]:
    postgres = LocalPostgres(tmp_path_factory.mktemp("faults-postgres"))
    kafka = LocalKafka(tmp_path_factory.mktemp("faults-kafka"), ROOT / ".cache")
    url = postgres.start(STARTED_WITHIN)
    bootstrap = kafka.start(STARTED_WITHIN)
    try:
        yield Infra(postgres, kafka, url, Brokers(bootstrap, secrets=kafka.secrets))
    finally:
        kafka.stop()
        postgres.stop()


@pytest.fixture
async def env(infra: Infra, tmp_path: Path) -> AsyncIterator[Env]:
    name = f"f_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(infra.url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    database_url = infra.url.rsplit("/", 1)[0] + f"/{name}"
    # Under the project's topic prefix: the principals' ACLs (deploy/local/kafka_principals.py).
    topic = f"agreements.events.faults-{uuid.uuid4().hex[:8]}"
    await ensure_topic(infra.brokers.admin, topic, 6, TOPIC_CONFIG)
    await create_acls(infra.brokers.admin, topic_acls(topic))
    accounts = await prepare_database(database_url, session_passwords())
    scenario = Env(database_url, infra.brokers, topic, tmp_path, accounts)
    try:
        yield scenario
    finally:
        scenario.stop_all()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    FIGURES.write(terminalreporter)
