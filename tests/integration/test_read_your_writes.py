"""Decision 9 of docs/CONTRACT.md: `min_position=n` waits for the event at exactly position n.

Partitions are consumed independently, so a later position can be applied before an earlier
one. Here that happens for real: the relay is off, and the test publishes the later signing's
record (the very bytes the relay sends) before the earlier one's.
"""

from __future__ import annotations

from aiokafka import AIOKafkaProducer
from coordreg_contracts.envelope import CONTENT_TYPE

from services.common.envelope_signatures import SIGNATURE_HEADER
from services.registry.service_layer.event_store import StoredEvent
from tests.support.builders import sign_body
from tests.support.kafka import Brokers
from tests.support.stack import Stack, running_stack

WAIT = {"min_position_wait_seconds": 0.5}


async def publish(stack: Stack, agreement_id: str) -> int:
    """Publishes the agreement's stored events as the relay would (with the registry's signature,
    without which the projections refuse them: docs/CONTRACT.md B12); returns the last position."""
    rows = await stack.pool.fetch(
        """SELECT position, agreement_id, sequence, envelope, signature FROM registry.events
           WHERE agreement_id = $1 ORDER BY sequence""",
        agreement_id,
    )
    producer = AIOKafkaProducer(**stack.kafka.admin.kwargs(), acks="all")
    await producer.start()
    try:
        for row in rows:
            event = StoredEvent(row["position"], row["agreement_id"], row["sequence"], row["envelope"])
            await producer.send_and_wait(
                stack.topic,
                value=event.message(),
                key=agreement_id.encode("utf-8"),
                headers=[
                    ("content-type", CONTENT_TYPE.encode()),
                    (SIGNATURE_HEADER, row["signature"].encode("ascii")),
                ],
            )
    finally:
        await producer.stop()
    return int(rows[-1]["position"])


async def test_decision_9_min_position_waits_for_that_very_position(
    database_url: str, kafka: Brokers, topic: str
) -> None:
    async with running_stack(database_url, kafka, topic, relay=False, projection_options=WAIT) as stack:
        earlier = await stack.sign(sign_body())
        later = await stack.sign(sign_body())
        assert earlier["position"] < later["position"]
        assert await publish(stack, later["agreement_id"]) == later["position"]
        await stack.wait_for_position(later["position"])

        path = "/v1/parties/hctd-hoa-binh/obligations"
        applied = await stack.projections.get(path, params={"min_position": later["position"]})
        assert applied.status_code == 200, applied.text
        assert applied.json()["position"] > earlier["position"]
        # A higher position is applied, but not this one: the query still waits, then 503.
        waiting = await stack.projections.get(path, params={"min_position": earlier["position"]})
        assert waiting.status_code == 503, waiting.text
        assert waiting.json()["type"].endswith("/not-yet-consistent")
        assert waiting.headers["retry-after"] == "1"

        await publish(stack, earlier["agreement_id"])
        await stack.wait_for_position(earlier["position"])
        caught_up = await stack.projections.get(path, params={"min_position": earlier["position"]})
        assert caught_up.status_code == 200, caught_up.text
        ids = {o["agreement_id"] for o in caught_up.json()["obligations"]}
        assert {earlier["agreement_id"], later["agreement_id"]} <= ids
