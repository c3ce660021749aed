"""End to end: sign over HTTP -> the CloudEvent on Kafka -> the party's obligations on the query API."""

from __future__ import annotations

from tests.support.builders import sign_body
from tests.support.kafka import decode, read_topic
from tests.support.stack import Stack


async def test_signing_reaches_kafka_and_the_party_obligations(stack: Stack) -> None:
    body = sign_body(title="Chương trình phối hợp thực hiện tín dụng chính sách xã hội")
    response = await stack.registry.post(
        "/v1/agreements", json=body, headers={"X-Correlation-ID": "corr-e2e-1"}
    )
    assert response.status_code == 201, response.text
    assert response.headers["x-correlation-id"] == "corr-e2e-1"
    signed = response.json()

    [record] = [
        r
        for r in await read_topic(stack.kafka.consumer, stack.topic, 1)
        if r.key.decode() == signed["agreement_id"]
    ]
    event = decode(record)
    assert event["type"] == "vn.gov.coordination.AgreementSigned.v1"
    assert event["position"] == signed["position"] and event["correlationid"] == "corr-e2e-1"
    assert event["data"]["title"] == body["title"]

    obligations = await stack.projections.get(
        "/v1/parties/hctd-hoa-binh/obligations", params={"min_position": signed["position"]}
    )
    assert obligations.status_code == 200, obligations.text
    mine = [o for o in obligations.json()["obligations"] if o["agreement_id"] == signed["agreement_id"]]
    assert {(o["obligation_id"], o["role"]) for o in mine} == {
        ("nhan-dao", "supporter"),
        ("tuyen-truyen", "lead"),
    }
    for item in mine:
        assert item["document_number"] == body["document_number"]
        assert item["agreement_title"] == body["title"]
        assert item["status"] == "active" and item["latest_report"] is None
    lead = (await stack.projections.get("/v1/parties/mttq-hoa-binh/obligations")).json()["obligations"]
    assert [(o["obligation_id"], o["role"]) for o in lead if o["agreement_id"] == signed["agreement_id"]] == [
        ("nhan-dao", "lead")
    ]

    view = await stack.projections.get(f"/v1/agreements/{signed['agreement_id']}")
    assert view.status_code == 200 and view.json()["version"] == 1
    assert view.json()["parties"] == body["parties"]
