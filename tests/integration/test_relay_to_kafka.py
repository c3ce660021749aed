"""The relay publishes the store's events to Kafka as CloudEvents, in per-agreement order."""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict

from coordreg_contracts.envelope import CONTENT_TYPE, canonical_json, envelope_hash

from tests.support.builders import report_body, sign_body
from tests.support.kafka import decode, read_topic
from tests.support.stack import Stack


async def test_topic_holds_the_cloudevents_with_sequence_hash_and_prevhash(stack: Stack) -> None:
    signed = await stack.sign(sign_body())
    agreement_id = signed["agreement_id"]
    for period in ("2023", "2024"):
        response = await stack.registry.post(
            f"/v1/agreements/{agreement_id}/progress-reports", json=report_body(period=period)
        )
        assert response.status_code == 201, response.text
    # The signing also registered its parties, on their own streams (decision 16).
    expected = 3 + len(sign_body()["parties"])
    records = [
        r
        for r in await read_topic(stack.kafka.consumer, stack.topic, expected)
        if r.key == agreement_id.encode()
    ]
    assert len(records) == 3
    assert len({r.partition for r in records}) == 1, "one agreement, one partition"
    events = [decode(r) for r in records]
    assert [e["sequence"] for e in events] == [1, 2, 3]
    assert [e["type"] for e in events] == [
        "vn.gov.coordination.AgreementSigned.v1",
        "vn.gov.coordination.ProgressReported.v1",
        "vn.gov.coordination.ProgressReported.v1",
    ]
    assert events[0]["prevhash"] == ""
    for previous, current in itertools.pairwise(events):
        assert current["prevhash"] == previous["hash"]
    for event, record in zip(events, records, strict=True):
        assert event["hash"] == envelope_hash(event), "hash recomputed from the Kafka record itself"
        assert event["specversion"] == "1.0" and event["subject"] == agreement_id
        assert event["time"].endswith("Z") and event["datacontenttype"] == "application/json"
        assert dict(record.headers)["content-type"] == CONTENT_TYPE.encode()
        assert record.value == canonical_json(event)
    # The registry serves the very same envelopes.
    served = (await stack.registry.get(f"/v1/agreements/{agreement_id}/events")).json()["events"]
    assert served == events


async def test_outbox_is_emptied_only_after_publishing(stack: Stack) -> None:
    signed = [await stack.sign(sign_body()) for _ in range(5)]
    # The first signing also registered its parties, on their own streams (decision 16).
    records = await read_topic(stack.kafka.consumer, stack.topic, 5 + len(sign_body()["parties"]))
    assert {r.key.decode() for r in records} >= {s["agreement_id"] for s in signed}
    for _ in range(50):
        if await stack.pool.fetchval("SELECT count(*) FROM registry.outbox") == 0:
            break
        await asyncio.sleep(0.1)
    assert await stack.pool.fetchval("SELECT count(*) FROM registry.outbox") == 0


async def test_concurrent_commands_keep_per_agreement_order_on_the_topic(stack: Stack) -> None:
    agreements = [(await stack.sign(sign_body()))["agreement_id"] for _ in range(4)]

    async def report(agreement_id: str, period: str) -> None:
        response = await stack.registry.post(
            f"/v1/agreements/{agreement_id}/progress-reports", json=report_body(period=period)
        )
        assert response.status_code == 201, response.text

    await asyncio.gather(*(report(a, p) for a in agreements for p in ("2023", "2024", "2025", "2026")))
    total = len(agreements) * 5 + len(sign_body()["parties"])
    records = await read_topic(stack.kafka.consumer, stack.topic, total)
    sequences: dict[str, list[int]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        sequences[record.key.decode()].append(decode(record)["sequence"])
    for agreement_id in agreements:
        assert sequences[agreement_id] == [1, 2, 3, 4, 5]
