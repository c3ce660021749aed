"""Amend, report progress and close over HTTP on the real stack: every rule, its status,
its problem+json with the field path, and no event written when refused."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.builders import report_body, sign_body
from tests.support.stack import Stack

AMENDMENT = {
    "document_number": "12/QĐ-MTTQ-BTT",
    "reason": "Bổ sung nội dung chuyển đổi số",
    "effective_on": "2024-03-01",
}
DIGITAL = {
    "obligation_id": "chuyen-doi-so",
    "title": "Phối hợp chuyển đổi số",
    "lead_party_id": "hctd-hoa-binh",
    "supporting_party_ids": ["mttq-hoa-binh"],
    "cadence": "semiannual",
}


async def event_count(stack: Stack, agreement_id: str) -> int:
    return int(
        await stack.pool.fetchval(
            "SELECT count(*) FROM registry.events WHERE agreement_id = $1", agreement_id
        )
    )


async def refused(
    stack: Stack,
    agreement_id: str,
    path: str,
    body: dict[str, Any],
    status: int,
    loc: list[Any] | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    before = await event_count(stack, agreement_id)
    response = await stack.registry.post(f"/v1/agreements/{agreement_id}/{path}", json=body, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status and problem["title"] and problem["detail"] and problem["type"]
    if loc is not None:
        assert loc in [e["loc"] for e in problem["errors"]], problem
    assert await event_count(stack, agreement_id) == before, "a refused command wrote an event"
    return response


@pytest.fixture
async def agreement(stack: Stack) -> str:
    return str((await stack.sign(sign_body()))["agreement_id"])


async def amend(stack: Stack, agreement_id: str, *changes: dict[str, Any], **headers: str) -> httpx.Response:
    return await stack.registry.post(
        f"/v1/agreements/{agreement_id}/amendments",
        json={**AMENDMENT, "changes": list(changes)},
        headers=headers,
    )


async def test_amendment_applies_all_six_operations(stack: Stack, agreement: str) -> None:
    response = await amend(
        stack,
        agreement,
        {"op": "add_party", "party": {"party_id": "bao-hoa-binh", "name": "Báo Hòa Bình", "role": "member"}},
        {"op": "add_obligation", "obligation": DIGITAL},
        {
            "op": "revise_obligation",
            "obligation_id": "nhan-dao",
            "cadence": "quarterly",
            "supporting_party_ids": [],
        },
        {"op": "withdraw_obligation", "obligation_id": "tuyen-truyen", "reason": "Gộp"},
        {"op": "remove_party", "party_id": "bao-hoa-binh"},
        {"op": "change_term", "term": {"start": "2023-01-01", "end": "2028-12-31"}},
    )
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == '"2"'
    assert response.json()["version"] == 2 and response.json()["status"] == "active"
    state = (await stack.registry.get(f"/v1/agreements/{agreement}")).json()
    obligations = {o["obligation_id"]: o for o in state["obligations"]}
    assert (
        obligations["nhan-dao"]["cadence"] == "quarterly"
        and obligations["nhan-dao"]["supporting_party_ids"] == []
    )
    assert obligations["tuyen-truyen"]["status"] == "withdrawn"
    assert obligations["chuyen-doi-so"]["status"] == "active"
    assert state["term"]["end"] == "2028-12-31"
    assert {p["party_id"] for p in state["parties"]} == {"mttq-hoa-binh", "hctd-hoa-binh"}


@pytest.mark.parametrize(
    ("changes", "loc"),
    [
        ([{"op": "remove_party", "party_id": "hctd-hoa-binh"}], ["body", "changes", 0, "party_id"]),
        ([{"op": "revise_obligation", "obligation_id": "khong-co"}], ["body", "changes", 0, "obligation_id"]),
        ([{"op": "add_obligation", "obligation": {**DIGITAL, "obligation_id": "nhan-dao"}}],
         ["body", "changes", 0, "obligation", "obligation_id"]),
        ([{"op": "add_obligation", "obligation": {**DIGITAL, "lead_party_id": "so-noi-vu"}}],
         ["body", "changes", 0, "obligation", "lead_party_id"]),
        ([{"op": "add_party", "party": {"party_id": "so-noi-vu", "name": "Sở Nội vụ", "role": "lead"}}],
         ["body", "changes"]),
        ([{"op": "change_term", "term": {"start": "2020-01-01", "end": "2022-12-31"}}],
         ["body", "changes", 0, "term", "end"]),
        ([{"op": "change_term", "term": {"start": "2027-01-01", "end": "2023-01-01"}}],
         ["body", "changes", 0, "term"]),
        ([{"op": "withdraw_obligation", "obligation_id": "nhan-dao"},
          {"op": "withdraw_obligation", "obligation_id": "tuyen-truyen"}], ["body", "changes"]),
        ([{"op": "rename_agreement", "title": "…"}], None),
        ([], ["body", "changes"]),
    ],
)  # fmt: skip
async def test_bad_amendments_change_nothing(
    stack: Stack, agreement: str, changes: list[dict[str, Any]], loc: list[Any] | None
) -> None:
    await refused(stack, agreement, "amendments", {**AMENDMENT, "changes": changes}, 422, loc)


async def test_if_match_pins_the_version(stack: Stack, agreement: str) -> None:
    withdraw = {"op": "withdraw_obligation", "obligation_id": "tuyen-truyen"}
    ok = await amend(stack, agreement, withdraw, **{"If-Match": '"1"'})
    assert ok.status_code == 200
    body = {
        **AMENDMENT,
        "changes": [{"op": "revise_obligation", "obligation_id": "nhan-dao", "cadence": "monthly"}],
    }
    await refused(stack, agreement, "amendments", body, 412, headers={"If-Match": '"1"'})
    await refused(stack, agreement, "amendments", body, 400, headers={"If-Match": "latest"})


async def test_unknown_agreement_is_404_for_every_command(stack: Stack) -> None:
    for path, body in (
        ("amendments", {**AMENDMENT, "changes": [{"op": "remove_party", "party_id": "x"}]}),
        ("progress-reports", report_body()),
        ("close", {"closed_on": "2027-12-31", "outcome": "completed"}),
    ):
        response = await stack.registry.post(f"/v1/agreements/no-such-id/{path}", json=body)
        assert response.status_code == 404 and response.json()["status"] == 404


async def test_progress_report_is_created(stack: Stack, agreement: str) -> None:
    response = await stack.registry.post(f"/v1/agreements/{agreement}/progress-reports", json=report_body())
    assert response.status_code == 201
    assert response.json() == {
        "agreement_id": agreement,
        "version": 2,
        "position": response.json()["position"],
        "status": "active",
    }


@pytest.mark.parametrize(
    ("overrides", "loc"),
    [
        ({"party_id": "bao-hoa-binh"}, ["body", "party_id"]),
        ({"period": "2024-Q3"}, ["body", "period"]),
        ({"period": "2022"}, ["body", "period"]),
        ({"period": "2024-13"}, ["body", "period"]),
        ({"reported_on": "2023-01-02"}, ["body", "reported_on"]),
        ({"obligation_id": "khong-co"}, ["body", "obligation_id"]),
        ({"completion_percent": 101}, ["body", "completion_percent"]),
        ({"status": "done"}, ["body", "status"]),
    ],
)
async def test_bad_progress_reports_change_nothing(
    stack: Stack, agreement: str, overrides: dict[str, Any], loc: list[Any]
) -> None:
    await refused(stack, agreement, "progress-reports", report_body(**overrides), 422, loc)


async def test_withdrawn_obligation_takes_no_reports(stack: Stack, agreement: str) -> None:
    assert (
        await amend(stack, agreement, {"op": "withdraw_obligation", "obligation_id": "tuyen-truyen"})
    ).status_code == 200
    body = report_body(obligation_id="tuyen-truyen", party_id="hctd-hoa-binh", period="2024-Q2")
    await refused(stack, agreement, "progress-reports", body, 422, ["body", "obligation_id"])


async def test_close_then_nothing_but_reads(stack: Stack, agreement: str) -> None:
    closing = {"closed_on": "2027-12-31", "outcome": "completed", "summary": "Tổng kết giai đoạn 2023-2027"}
    response = await stack.registry.post(f"/v1/agreements/{agreement}/close", json=closing)
    assert response.status_code == 200 and response.json()["status"] == "closed"
    await refused(stack, agreement, "close", closing, 409)
    await refused(stack, agreement, "progress-reports", report_body(), 409)
    await refused(
        stack,
        agreement,
        "amendments",
        {**AMENDMENT, "changes": [{"op": "remove_party", "party_id": "x"}]},
        409,
    )
    assert (await stack.registry.get(f"/v1/agreements/{agreement}")).json()["status"] == "closed"


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"closed_on": "2023-04-24", "outcome": "completed"}, ["body", "closed_on"]),
        ({"closed_on": "2027-12-31", "outcome": "superseded"}, ["body", "successor_agreement_id"]),
        ({"closed_on": "2027-12-31", "outcome": "superseded", "successor_agreement_id": "nope"},
         ["body", "successor_agreement_id"]),
        ({"closed_on": "2027-12-31", "outcome": "finished"}, ["body", "outcome"]),
    ],
)  # fmt: skip
async def test_bad_closings_change_nothing(
    stack: Stack, agreement: str, body: dict[str, Any], loc: list[Any]
) -> None:
    await refused(stack, agreement, "close", body, 422, loc)


async def test_superseded_by_an_existing_successor(stack: Stack, agreement: str) -> None:
    successor = await stack.sign(
        sign_body(signed_on="2027-12-20", term={"start": "2028-01-01", "end": "2032-12-31"})
    )
    response = await stack.registry.post(
        f"/v1/agreements/{agreement}/close",
        json={
            "closed_on": "2027-12-31",
            "outcome": "superseded",
            "successor_agreement_id": successor["agreement_id"],
        },
    )
    assert response.status_code == 200
    state = (await stack.registry.get(f"/v1/agreements/{agreement}")).json()
    assert state["closure"]["successor_agreement_id"] == successor["agreement_id"]
