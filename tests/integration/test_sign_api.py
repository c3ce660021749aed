"""POST /v1/agreements and the registry's reads, over HTTP on the real stack."""

from __future__ import annotations

import unicodedata
from typing import Any

import pytest

from tests.support.builders import sign_body
from tests.support.stack import Stack


async def store_counts(stack: Stack) -> tuple[int, int]:
    """Events and document claims (the outbox drains on its own, so it is not counted)."""
    events = await stack.pool.fetchval("SELECT count(*) FROM registry.events")
    claims = await stack.pool.fetchval("SELECT count(*) FROM registry.document_numbers")
    return events, claims


async def test_sign_returns_201_with_location_etag_and_body(stack: Stack) -> None:
    response = await stack.registry.post("/v1/agreements", json=sign_body())
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"agreement_id", "version", "position", "status"}
    assert body["version"] == 1 and body["status"] == "active" and body["position"] >= 1
    assert response.headers["location"] == f"/v1/agreements/{body['agreement_id']}"
    assert response.headers["etag"] == '"1"'


async def test_diacritics_round_trip_exactly_in_every_field(stack: Stack) -> None:
    body = sign_body(
        title="Chương trình phối hợp “Toàn dân đoàn kết xây dựng nông thôn mới, đô thị văn minh”",
        locality="Bắc Kạn",
    )
    body["parties"][0]["signatory"] = {"name": "Nguyễn Tuấn Thanh", "title": "Phó Chủ tịch Thường trực"}
    body["legal_basis"][0]["issuer"] = "Ban Bí thư Trung ương Đảng (khóa X)"
    signed = await stack.sign(body)
    state = (await stack.registry.get(f"/v1/agreements/{signed['agreement_id']}")).json()
    for key in ("title", "locality", "document_number"):
        assert state[key] == body[key]
    assert state["parties"] == body["parties"]
    assert state["legal_basis"] == body["legal_basis"]
    assert [
        {k: v for k, v in o.items() if k not in ("status", "inherited")} for o in state["obligations"]
    ] == body["obligations"]
    events = (await stack.registry.get(f"/v1/agreements/{signed['agreement_id']}/events")).json()["events"]
    assert events[0]["data"]["title"] == body["title"]


async def test_nfd_input_is_stored_as_nfc(stack: Stack) -> None:
    title = "Phối hợp chuyển đổi số trong công tác Mặt trận"
    signed = await stack.sign(sign_body(title=unicodedata.normalize("NFD", title)))
    state = (await stack.registry.get(f"/v1/agreements/{signed['agreement_id']}")).json()
    assert state["title"] == title


def without_lead(body: dict[str, Any]) -> dict[str, Any]:
    body["parties"][0]["role"] = "member"
    return body


def unknown_supporter(body: dict[str, Any]) -> dict[str, Any]:
    body["obligations"][0]["supporting_party_ids"] = ["so-tttt-hoa-binh"]
    return body


def end_before_start(body: dict[str, Any]) -> dict[str, Any]:
    body["term"] = {"start": "2027-12-31", "end": "2023-01-01"}
    return body


def signed_after_term(body: dict[str, Any]) -> dict[str, Any]:
    body["signed_on"] = "2028-02-01"
    return body


def obligation_lead_not_party(body: dict[str, Any]) -> dict[str, Any]:
    body["obligations"][1]["lead_party_id"] = "bao-hoa-binh"
    return body


def vietnamese_slug(body: dict[str, Any]) -> dict[str, Any]:
    body["parties"][1]["party_id"] = "hội-chữ-thập-đỏ"
    return body


@pytest.mark.parametrize(
    ("mutate", "loc"),
    [
        (without_lead, ["body", "parties"]),
        (unknown_supporter, ["body", "obligations", 0, "supporting_party_ids", 0]),
        (end_before_start, ["body", "term"]),
        (signed_after_term, ["body", "signed_on"]),
        (obligation_lead_not_party, ["body", "obligations", 1, "lead_party_id"]),
        (vietnamese_slug, ["body", "parties", 1, "party_id"]),
    ],
)
async def test_bad_signing_is_a_problem_with_the_field_path_and_writes_nothing(
    stack: Stack, mutate: Any, loc: list[Any]
) -> None:
    before = await store_counts(stack)
    body = mutate(sign_body(title="Chương trình phối hợp giảm nghèo bền vững", locality="Thái Nguyên"))
    response = await stack.registry.post("/v1/agreements", json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert {"type", "title", "status", "detail", "errors"} <= set(problem)
    assert problem["status"] == 422
    assert loc in [e["loc"] for e in problem["errors"]], problem
    assert await store_counts(stack) == before


async def test_malformed_json_is_a_problem(stack: Stack) -> None:
    response = await stack.registry.post(
        "/v1/agreements",
        content=b'{"title": "Ch\xc6\xb0\xc6\xa1ng',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


async def test_same_document_in_same_locality_is_409_and_elsewhere_fine(stack: Stack) -> None:
    body = sign_body()
    await stack.sign(body)
    before = await store_counts(stack)
    again = await stack.registry.post("/v1/agreements", json=body)
    assert again.status_code == 409 and again.headers["content-type"] == "application/problem+json"
    assert await store_counts(stack) == before
    elsewhere = await stack.registry.post("/v1/agreements", json={**body, "locality": "Lào Cai"})
    assert elsewhere.status_code == 201


async def test_a_number_restarts_every_year_but_is_taken_once_in_a_year(stack: Stack) -> None:
    """Decision 13: the 409 is for the same number in the same locality in the same year of `signed_on`."""
    body_2019 = sign_body(signed_on="2019-03-23")
    body_2024 = {**body_2019, "signed_on": "2024-01-01"}
    in_2019 = await stack.registry.post("/v1/agreements", json=body_2019)
    assert in_2019.status_code == 201, in_2019.text
    in_2024 = await stack.registry.post("/v1/agreements", json=body_2024)
    assert in_2024.status_code == 201, in_2024.text
    before = await store_counts(stack)
    # Later that year, the locality written otherwise: the same document again.
    again = await stack.registry.post(
        "/v1/agreements", json={**body_2024, "signed_on": "2024-12-31", "locality": " HÒA  BÌNH "}
    )
    assert again.status_code == 409 and again.headers["content-type"] == "application/problem+json"
    assert again.json()["existing_agreement_id"] == in_2024.json()["agreement_id"]
    assert await store_counts(stack) == before
    for response, body in ((in_2019, body_2019), (in_2024, body_2024)):
        state = (await stack.registry.get(f"/v1/agreements/{response.json()['agreement_id']}")).json()
        assert (state["document_number"], state["signed_on"]) == (body["document_number"], body["signed_on"])


async def test_parent_must_exist(stack: Stack) -> None:
    missing = await stack.registry.post(
        "/v1/agreements", json=sign_body(parent_agreement_id="no-such-agreement")
    )
    assert missing.status_code == 422
    assert ["body", "parent_agreement_id"] in [e["loc"] for e in missing.json()["errors"]]
    parent = await stack.sign(sign_body(kind="regulation"))
    child = await stack.registry.post(
        "/v1/agreements", json=sign_body(kind="plan", parent_agreement_id=parent["agreement_id"])
    )
    assert child.status_code == 201


async def test_unknown_agreement_is_404(stack: Stack) -> None:
    for path in ("/v1/agreements/nope", "/v1/agreements/nope/events"):
        response = await stack.registry.get(path)
        assert response.status_code == 404
        assert response.json()["status"] == 404


async def test_get_agreement_has_etag_and_events_have_envelopes(stack: Stack) -> None:
    signed = await stack.sign(sign_body())
    agreement_id = signed["agreement_id"]
    state = await stack.registry.get(f"/v1/agreements/{agreement_id}")
    assert state.headers["etag"] == '"1"' and state.json()["version"] == 1
    [event] = (await stack.registry.get(f"/v1/agreements/{agreement_id}/events")).json()["events"]
    assert event["type"] == "vn.gov.coordination.AgreementSigned.v1"
    assert event["subject"] == agreement_id and event["sequence"] == 1 and event["prevhash"] == ""
    assert event["position"] == signed["position"]


async def test_service_endpoints(stack: Stack) -> None:
    for client in (stack.registry, stack.projections):
        assert (await client.get("/healthz")).status_code == 200
        assert (await client.get("/readyz")).status_code == 200
        metrics = (await client.get("/metrics")).text
        assert "http_requests_total" in metrics and 'route="/healthz"' in metrics
        assert (await client.get("/docs")).status_code == 200
        assert (await client.get("/openapi.json")).json()["openapi"].startswith("3.")
