"""The demo loader over HTTP on the real stack, as `make run` and the compose `demo` service run
it: everything signed, lived and reorganised, the read models showing the demo as of today, and
a second run changing nothing."""

from __future__ import annotations

import asyncio

import httpx

from deploy.demo.load import demo_agreements, demo_parties, demo_successions, load
from tests.support.stack import Stack


async def store_count(stack: Stack) -> int:
    return int(await stack.pool.fetchval("SELECT count(*) FROM registry.events"))


async def test_the_demo_loads_with_its_successions_and_loads_again_as_a_no_op(stack: Stack) -> None:
    first = await asyncio.to_thread(load, stack.registry_url)
    assert (first["signed_now"], first["parties_registered_now"], first["successions_recorded_now"]) == (
        len(demo_agreements()),
        len(demo_parties()),
        len(demo_successions()),
    )
    # The loader came back only when every transfer was in, and its last position is theirs.
    assert await stack.pool.fetchval("SELECT count(*) FROM registry.succession_queue") == 0
    transferred = await stack.pool.fetchval(
        "SELECT max(position) FROM registry.events WHERE event_type LIKE '%.ObligationsTransferred.v1'"
    )
    assert first["last_position"] == await stack.pool.fetchval("SELECT max(position) FROM registry.events")
    assert first["last_position"] == transferred
    await stack.wait_for_position(first["last_position"])

    labour = first["agreements"]["hb-2023-sldtbxh"]
    held = (await stack.projections.get("/v1/parties/snv-phu-tho/obligations")).json()["obligations"]
    assert sorted((o["agreement_id"], o["obligation_id"], o["inherited_from"], o["role"]) for o in held) == [
        (labour, "giam-ngheo-ben-vung", "sldtbxh-hoa-binh", "lead"),
        (labour, "so-ket-hang-nam", "sldtbxh-hoa-binh", "supporter"),
        (labour, "tuyen-truyen", "sldtbxh-hoa-binh", "supporter"),
    ]
    old = (await stack.projections.get("/v1/parties/sldtbxh-hoa-binh/obligations")).json()
    assert old["obligations"] == []
    assert old["succeeded_by"] == {
        "successor_party_id": "snv-phu-tho",
        "effective_on": "2025-07-01",
        "legal_basis": "45/2025/NĐ-CP",
    }
    found = (
        await stack.projections.get("/v1/agreements", params={"locality": "Phú Thọ", "limit": 50})
    ).json()
    assert {a["agreement_id"] for a in found["agreements"]} == {
        first["agreements"][item["key"]]
        for item in demo_agreements()
        if item["body"]["locality"] == "Hòa Bình"
    }

    # The old department, with a token that acts for it, is refused a 2026 report (decision 18).
    token = stack.token(party_ids=["sldtbxh-hoa-binh"])
    async with httpx.AsyncClient(base_url=stack.registry_url, headers=Stack.bearer(token)) as client:
        refused = await client.post(
            f"/v1/agreements/{labour}/progress-reports",
            json={
                "obligation_id": "giam-ngheo-ben-vung",
                "party_id": "sldtbxh-hoa-binh",
                "period": "2026",
                "status": "in_progress",
                "completion_percent": 10,
                "summary": "Báo cáo sau ngày 01/7/2025",
                "reported_on": "2026-12-20",
            },
        )
    assert refused.status_code == 422 and "snv-phu-tho" in refused.text, refused.text

    events = await store_count(stack)
    again = await asyncio.to_thread(load, stack.registry_url)
    assert again["agreements"] == first["agreements"]
    assert (
        again["signed_now"],
        again["lifecycle_applied"],
        again["parties_registered_now"],
        again["successions_recorded_now"],
        again["last_position"],
    ) == (0, 0, 0, 0, 0)
    assert await store_count(stack) == events
