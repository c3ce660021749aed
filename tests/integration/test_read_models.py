"""Every query of the projections API, on read models built from the real topic."""

from __future__ import annotations

from typing import Any

from tests.support.builders import report_body, sign_body
from tests.support.stack import Stack

AMENDMENT = {"document_number": "12/QĐ-MTTQ-BTT", "reason": "Điều chỉnh", "effective_on": "2024-03-01"}


async def post(stack: Stack, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await stack.registry.post(path, json=body)
    assert response.status_code in (200, 201), response.text
    result: dict[str, Any] = response.json()
    return result


async def obligations(
    stack: Stack, party: str, position: int, status: str = "active"
) -> list[dict[str, Any]]:
    response = await stack.projections.get(
        f"/v1/parties/{party}/obligations", params={"min_position": position, "status": status}
    )
    assert response.status_code == 200, response.text
    assert response.json()["party_id"] == party and response.json()["position"] >= position
    items: list[dict[str, Any]] = response.json()["obligations"]
    return items


async def test_lead_moves_between_lists_withdrawn_leaves_and_closing_empties(stack: Stack) -> None:
    signed = await stack.sign(sign_body())
    agreement = signed["agreement_id"]
    moved = await post(
        stack,
        f"/v1/agreements/{agreement}/amendments",
        {
            **AMENDMENT,
            "changes": [
                {
                    "op": "add_party",
                    "party": {"party_id": "sldtbxh-hoa-binh", "name": "Sở LĐ-TB&XH", "role": "member"},
                },
                {"op": "revise_obligation", "obligation_id": "nhan-dao", "lead_party_id": "sldtbxh-hoa-binh"},
            ],
        },
    )
    lead = await obligations(stack, "sldtbxh-hoa-binh", moved["position"])
    assert [(o["obligation_id"], o["role"]) for o in lead] == [("nhan-dao", "lead")]
    former = await obligations(stack, "mttq-hoa-binh", moved["position"])
    assert [o for o in former if o["agreement_id"] == agreement] == []

    withdrawn = await post(
        stack,
        f"/v1/agreements/{agreement}/amendments",
        {**AMENDMENT, "changes": [{"op": "withdraw_obligation", "obligation_id": "tuyen-truyen"}]},
    )
    active = await obligations(stack, "hctd-hoa-binh", withdrawn["position"])
    assert {o["obligation_id"] for o in active} == {"nhan-dao"}
    everything = await obligations(stack, "hctd-hoa-binh", withdrawn["position"], "all")
    assert {(o["obligation_id"], o["status"]) for o in everything} == {
        ("nhan-dao", "active"),
        ("tuyen-truyen", "withdrawn"),
    }

    closed = await post(
        stack, f"/v1/agreements/{agreement}/close", {"closed_on": "2027-12-31", "outcome": "completed"}
    )
    for party in ("hctd-hoa-binh", "sldtbxh-hoa-binh"):
        assert await obligations(stack, party, closed["position"]) == []
        assert {o["status"] for o in await obligations(stack, party, closed["position"], "all")} <= {"closed"}


async def test_latest_report_is_the_latest_period_and_a_later_report_supersedes(stack: Stack) -> None:
    agreement = (await stack.sign(sign_body()))["agreement_id"]
    path = f"/v1/agreements/{agreement}/progress-reports"
    await post(stack, path, report_body(period="2024", status="in_progress", completion_percent=40))
    await post(stack, path, report_body(period="2023", status="completed", completion_percent=100))
    last = await post(
        stack,
        path,
        report_body(period="2024", status="at_risk", completion_percent=55, reported_on="2024-12-28"),
    )
    [item] = [
        o
        for o in await obligations(stack, "hctd-hoa-binh", last["position"])
        if o["obligation_id"] == "nhan-dao"
    ]
    assert item["role"] == "supporter"
    assert item["latest_report"] == {
        "period": "2024",
        "status": "at_risk",
        "completion_percent": 55,
        "reported_on": "2024-12-28",
    }


async def test_party_history_names_each_event_once_with_cursor_paging(stack: Stack) -> None:
    agreement = (await stack.sign(sign_body()))["agreement_id"]
    for year in ("2023", "2024", "2025"):
        await post(stack, f"/v1/agreements/{agreement}/progress-reports", report_body(period=year))
    other = await post(
        stack, f"/v1/agreements/{agreement}/progress-reports", report_body(party_id="mttq-hoa-binh")
    )
    pages: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, "min_position": other["position"]}
        if cursor:
            params["cursor"] = cursor
        page = (await stack.projections.get("/v1/parties/hctd-hoa-binh/history", params=params)).json()
        pages.extend(page["events"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [e["sequence"] for e in pages] == [1, 2, 3, 4], (
        "signing + its own three reports, oldest first, once each"
    )
    assert pages[0]["type"] == "vn.gov.coordination.AgreementSigned.v1" and pages[0]["summary"]
    assert len({e["event_id"] for e in pages}) == 4
    lead_history = (await stack.projections.get("/v1/parties/mttq-hoa-binh/history")).json()["events"]
    assert [e["sequence"] for e in lead_history] == [1, 5]


async def test_list_and_search_ignore_case_and_diacritics(stack: Stack) -> None:
    digital = await stack.sign(sign_body(title="Chương trình phối hợp Chuyển đổi số", locality="Bình Định"))
    other = await stack.sign(
        sign_body(title="Chương trình phối hợp giảm nghèo bền vững", locality="Thái Nguyên")
    )
    for signed in (digital, other):
        await stack.projections.get("/v1/agreements", params={"min_position": signed["position"]})
    for q in ("chuyen doi so", "CHUYỂN ĐỔI SỐ", "Chuyen Doi"):
        found = (await stack.projections.get("/v1/agreements", params={"q": q})).json()["agreements"]
        assert [a["agreement_id"] for a in found] == [digital["agreement_id"]], q
    by_locality = (await stack.projections.get("/v1/agreements", params={"locality": "binh dinh"})).json()
    assert [a["agreement_id"] for a in by_locality["agreements"]] == [digital["agreement_id"]]
    by_party = (
        await stack.projections.get("/v1/agreements", params={"party_id": "hctd-hoa-binh", "limit": 1})
    ).json()
    assert len(by_party["agreements"]) == 1 and by_party["next_cursor"]
    rest = (
        await stack.projections.get(
            "/v1/agreements", params={"party_id": "hctd-hoa-binh", "cursor": by_party["next_cursor"]}
        )
    ).json()
    assert len(rest["agreements"]) == 1 and rest["next_cursor"] is None
    assert (await stack.projections.get("/v1/agreements", params={"status": "closed"})).json()[
        "agreements"
    ] == []


async def test_agreement_view_and_overdue_report(stack: Stack) -> None:
    agreement = (await stack.sign(sign_body()))["agreement_id"]
    reported = await post(
        stack, f"/v1/agreements/{agreement}/progress-reports", report_body(party_id="mttq-hoa-binh")
    )
    view = await stack.projections.get(
        f"/v1/agreements/{agreement}", params={"min_position": reported["position"]}
    )
    assert view.status_code == 200 and view.json()["version"] == 2 and view.headers["etag"] == '"2"'
    overdue_2024 = (await stack.projections.get("/v1/reports/overdue", params={"period": "2024"})).json()[
        "obligations"
    ]
    assert [o["obligation_id"] for o in overdue_2024 if o["agreement_id"] == agreement] == []
    overdue_2025 = (await stack.projections.get("/v1/reports/overdue", params={"period": "2025"})).json()[
        "obligations"
    ]
    assert [o["obligation_id"] for o in overdue_2025 if o["agreement_id"] == agreement] == ["nhan-dao"]
    quarterly = (await stack.projections.get("/v1/reports/overdue", params={"period": "2024-Q3"})).json()[
        "obligations"
    ]
    assert [
        (o["obligation_id"], o["lead_party_id"]) for o in quarterly if o["agreement_id"] == agreement
    ] == [("tuyen-truyen", "hctd-hoa-binh")]
    assert (
        await stack.projections.get("/v1/reports/overdue", params={"period": "2024-X1"})
    ).status_code == 422
    assert (await stack.projections.get("/v1/agreements/unknown")).status_code == 404


async def test_status_and_read_your_writes(stack: Stack) -> None:
    signed = await stack.sign(sign_body())
    await stack.projections.get("/v1/agreements", params={"min_position": signed["position"]})
    status = (await stack.projections.get("/v1/projections/status")).json()["projections"][0]
    assert (
        status["last_position"] >= signed["position"]
        and status["lag_events"] == 0
        and status["parked_events"] == 0
    )
    future = signed["position"] + 1_000_000
    response = await stack.projections.get(
        "/v1/parties/hctd-hoa-binh/obligations", params={"min_position": future}
    )
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert response.headers["content-type"] == "application/problem+json"
