"""The registry's event signatures end to end on PostgreSQL and Kafka (docs/CONTRACT.md B12): each
event is signed in its append (group commit included), stored beside its unchanged envelope,
carried as the record's `envelope-signature` header, published at GET /v1/event-keys, and checked
by `coordreg-audit verify`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import asyncpg
import pytest
from coordreg_contracts.commands import SignAgreement
from coordreg_contracts.envelope import Envelope, envelope_hash
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.audit.settings import AuditSettings
from services.audit.verify import verify
from services.common.db import create_pool, migrate
from services.common.envelope_signatures import (
    DEV_SIGNER,
    DEV_VERIFIER_KEY,
    SIGNATURE_HEADER,
    EnvelopeSigner,
    EnvelopeVerifier,
)
from services.registry.adapters.postgres_idempotency import PostgresIdempotencyStore
from services.registry.adapters.postgres_store import PostgresEventStore
from services.registry.bootstrap import bootstrap
from services.registry.migrations import MIGRATIONS
from services.registry.service_layer.binding import Caller
from services.registry.service_layer.bus import CommandContext
from tests.support.builders import report_body, sign_body
from tests.support.kafka import read_topic
from tests.support.stack import Stack

DEV = EnvelopeVerifier.from_keys([DEV_VERIFIER_KEY])


async def test_every_event_is_signed_stored_beside_its_envelope_and_carried_in_a_header(stack: Stack) -> None:
    keys = await stack.registry.get("/v1/event-keys")
    assert keys.status_code == 200
    assert keys.json() == {
        "verifier_key": DEV_VERIFIER_KEY,
        "retired_verifier_keys": [],
        "header": SIGNATURE_HEADER,
    }
    # Several commands at once: the group commit writes them in one transaction, each signed.
    signed = await asyncio.gather(
        *(stack.sign(sign_body(document_number=f"{n}/CTr-MTTQ")) for n in range(1, 6))
    )
    for result in signed:
        response = await stack.registry.post(
            f"/v1/agreements/{result['agreement_id']}/progress-reports", json=report_body()
        )
        assert response.status_code == 201, response.text
    rows = await stack.pool.fetch(
        "SELECT position, envelope, signature FROM registry.events ORDER BY position"
    )
    assert len(rows) >= 10
    for row in rows:
        document = json.loads(row["envelope"])
        # The envelope is what it was: no new attribute, the same hash.
        assert "signature" not in document and SIGNATURE_HEADER not in document
        assert document["hash"] == envelope_hash(document)
        DEV.check(document["hash"], row["signature"])
    records = await read_topic(stack.kafka.consumer, stack.topic, len(rows))
    assert len(records) >= len(rows)
    by_position = {row["position"]: row["signature"] for row in rows}
    for record in records:
        headers = dict(record.headers)
        envelope = Envelope.model_validate_json(record.value)
        assert headers[SIGNATURE_HEADER].decode() == by_position[envelope.position]
        DEV.check(envelope.hash, headers[SIGNATURE_HEADER])
    # Keys are public, tokens are not optional: the route needs agreements:read like the log's keys.
    anonymous = await stack.registry.get("/v1/event-keys", headers={"Authorization": ""})
    assert anonymous.status_code == 401


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, min_size=1, max_size=4)
    await migrate(pool, "registry", MIGRATIONS)
    yield pool
    await pool.close()


async def _sign_with(pool: asyncpg.Pool, signer: EnvelopeSigner | None, number: str) -> str:
    registry = bootstrap(PostgresEventStore(pool, signer=signer), PostgresIdempotencyStore(pool))
    context = CommandContext(Caller.in_process("signature-test"), "c", "k")
    result = await registry.bus.run(SignAgreement.model_validate(sign_body(document_number=number)), context)
    return result.agreement_id


async def test_audit_verify_finds_a_signature_the_registry_key_did_not_make(
    pool: asyncpg.Pool, database_url: str
) -> None:
    genuine = await _sign_with(pool, DEV_SIGNER, "1/CTr-MTTQ")
    forged = await _sign_with(
        pool, EnvelopeSigner(DEV_SIGNER.name, Ed25519PrivateKey.generate()), "2/CTr-MTTQ"
    )
    unsigned = await _sign_with(pool, None, "3/CTr-MTTQ")
    settings = AuditSettings(database_url=database_url, progress_seconds=0)
    report = await verify(settings, skip_kafka=True)
    problems = [(p.stream_id, p.check) for p in report.problems]
    assert problems == [(forged, "signature")], report.summary()
    assert genuine not in {p.stream_id for p in report.problems}
    # Events stored without a signature (before migration 009) are counted, not failed.
    assert report.unsigned >= 1 and unsigned not in {p.stream_id for p in report.problems}
    assert "unsigned:" in report.summary()
    # An auditor holding another key finds every signed event's signature wrong.
    other = AuditSettings(
        database_url=database_url,
        progress_seconds=0,
        event_verifier_keys=EnvelopeSigner("x.example/events", Ed25519PrivateKey.generate()).verifier_key,
    )
    assert {p.stream_id for p in (await verify(other, skip_kafka=True)).problems} >= {genuine, forged}
