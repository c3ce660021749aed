"""Forged records on the real topic (docs/adr/0003-signed-envelopes.md, docs/SECURITY.md "Signed
envelopes"): a client allowed to produce writes records that claim the agreement's next sequence
before the registry's real event. Each is dead-lettered with its reason and counted; the real
event that follows is applied. Without the checks the first forgery would take sequence 2 and
the real event would be skipped as a duplicate, so the read model would hold the forger's data.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiokafka import AIOKafkaProducer
from coordreg_contracts.envelope import Envelope, canonical_json, seal
from coordreg_contracts.events import ProgressReported
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client import REGISTRY

from services.common.envelope_signatures import DEV_SIGNER, SIGNATURE_HEADER, EnvelopeSigner
from tests.support.builders import report_body, sign_body
from tests.support.kafka import Brokers
from tests.support.stack import Stack, running_stack

REASONS = ("hash", "prevhash", "unsigned", "signature")


def refused(reason: str) -> float:
    return REGISTRY.get_sample_value("projection_records_refused_total", {"reason": reason}) or 0.0


def forged_report(first: Envelope, *, prevhash: str | None = None) -> Envelope:
    """What a forger would write: a well-formed report with the agreement's next sequence, chained
    to the real first event, its hash recomputed correctly (the data is the forger's)."""
    return seal(
        event=ProgressReported.model_validate(
            report_body(completion_percent=5, summary="Báo cáo giả mạo", status="in_progress")
        ),
        event_id="00000000-0000-4000-8000-00000000f0f0",
        agreement_id=first.subject,
        sequence=2,
        recorded_at="2026-12-01T00:00:00.000000Z",
        prevhash=first.hash if prevhash is None else prevhash,
        actor=first.actor,
        correlation_id="forged",
        causation_id="forged",
    )


def value(envelope: Envelope, **changes: Any) -> bytes:
    return canonical_json({**envelope.to_json(), "position": 999_999, **changes})


async def produce(stack: Stack, key: str, records: list[tuple[bytes, list[tuple[str, bytes]]]]) -> None:
    """Straight into the events topic, as any client with produce rights could: here the relay's
    principal, the one allowed to write it (a pod holding its credentials, a compromised relay)."""
    producer = AIOKafkaProducer(**stack.kafka.relay.kwargs(), acks="all")
    await producer.start()
    try:
        for payload, headers in records:
            await producer.send_and_wait(
                stack.topic,
                value=payload,
                key=key.encode(),
                headers=[("content-type", b"application/cloudevents+json"), *headers],
            )
    finally:
        await producer.stop()


async def wait_for(check: Any, timeout: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("timed out")


def _pem(key: Ed25519PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


async def test_forged_next_records_are_dead_lettered_and_the_real_event_is_applied(
    database_url: str, kafka: Brokers, topic: str
) -> None:
    # A registry key of its own, as production has: the development key (public) is not trusted.
    registry_key = EnvelopeSigner("test.registry.invalid/events", Ed25519PrivateKey.generate())
    async with running_stack(
        database_url,
        kafka,
        topic,
        registry_options={"event_signing_key": _pem(registry_key.key), "event_key_name": registry_key.name},
        projection_options={"event_verifier_keys": registry_key.verifier_key},
    ) as stack:
        signed = await stack.sign(sign_body())
        agreement_id = signed["agreement_id"]
        await stack.wait_for_position(signed["position"])
        row = await stack.pool.fetchrow(
            "SELECT envelope, signature FROM registry.events WHERE agreement_id = $1 AND sequence = 1",
            agreement_id,
        )
        assert row is not None
        first = Envelope.model_validate(json.loads(row["envelope"]))
        assert row["signature"] == registry_key.sign(first.hash), "the registry signs with its configured key"
        before = {reason: refused(reason) for reason in REASONS}

        forgery = forged_report(first)
        forger = EnvelopeSigner("attacker.invalid/events", Ed25519PrivateKey.generate())
        wrong_link = forged_report(first, prevhash="ab" * 32)
        await produce(
            stack,
            agreement_id,
            [
                # 1. The next sequence with a hash that is not the record's own.
                (value(forgery, hash="00" * 32), [(SIGNATURE_HEADER, registry_key.sign("00" * 32).encode())]),
                # 2. Hash chain recomputed correctly, but no signature.
                (value(forgery), []),
                # 3. ... signed by the forger's own key, under the registry key's name too.
                (value(forgery), [(SIGNATURE_HEADER, forger.sign(forgery.hash).encode())]),
                (
                    value(forgery),
                    [
                        (
                            SIGNATURE_HEADER,
                            EnvelopeSigner(registry_key.name, forger.key).sign(forgery.hash).encode(),
                        )
                    ],
                ),
                # 4. ... signed by the public development key, which this consumer does not trust.
                (value(forgery), [(SIGNATURE_HEADER, DEV_SIGNER.sign(forgery.hash).encode())]),
                # 5. Signed by the registry's own key, but not chained to the event applied before
                #    (what a stolen key without the history, or a replayed fork, would give).
                (value(wrong_link), [(SIGNATURE_HEADER, registry_key.sign(wrong_link.hash).encode())]),
            ],
        )

        async def all_dead_lettered() -> bool:
            count = await stack.pool.fetchval(
                "SELECT count(*) FROM projections.dead_letters WHERE key = $1", agreement_id
            )
            return bool(count == 6)

        await wait_for(all_dead_lettered)
        # Nothing of the forgeries was applied: the stream still stands at the real first event.
        version = await stack.pool.fetchval(
            "SELECT version FROM projections.agreements WHERE agreement_id = $1", agreement_id
        )
        assert version == 1

        # The registry's real event for sequence 2 comes after them on the same partition.
        real = await stack.registry.post(
            f"/v1/agreements/{agreement_id}/progress-reports", json=report_body(completion_percent=60)
        )
        assert real.status_code == 201, real.text
        await stack.wait_for_position(real.json()["position"])

        report = await stack.pool.fetchrow(
            "SELECT completion_percent, sequence FROM projections.reports WHERE agreement_id = $1",
            agreement_id,
        )
        assert report is not None
        assert (report["completion_percent"], report["sequence"]) == (60, 2), (
            "the real report, not the forged one"
        )
        history = await stack.pool.fetch(
            "SELECT event_id::text FROM projections.party_history WHERE agreement_id = $1 AND sequence = 2",
            agreement_id,
        )
        assert history and forgery.id not in {h["event_id"] for h in history}
        dead = await stack.pool.fetch(
            "SELECT reason FROM projections.dead_letters WHERE key = $1 ORDER BY record_offset", agreement_id
        )
        reasons = [d["reason"].split(":")[0:2] for d in dead]
        assert reasons == [
            ["RecordRefused", " hash"],
            ["RecordRefused", " unsigned"],
            ["RecordRefused", " signature"],
            ["RecordRefused", " signature"],
            ["RecordRefused", " signature"],
            ["RecordRefused", " prevhash"],
        ]
        counted = {reason: refused(reason) - before[reason] for reason in REASONS}
        assert counted == {"hash": 1, "unsigned": 1, "signature": 3, "prevhash": 1}
