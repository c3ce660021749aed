"""Every query of the projections API, on read models built from the real topic."""

from __future__ import annotations

import json
from typing import Any

from services.common.db import create_pool, migrate
from services.common.search_text import search_key
from services.projections.migrations import MIGRATIONS
from services.projections.readmodel import queries
from tests.support.builders import poverty_programme, report_body, sign_body
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
    # The signing registered the party in the directory (decision 16), in its own transaction.
    assert [(e["type"].split(".")[-2], e["agreement_id"], e["sequence"]) for e in pages] == [
        ("AgreementSigned", agreement, 1),
        ("PartyRegistered", None, 1),
        ("ProgressReported", agreement, 2),
        ("ProgressReported", agreement, 3),
        ("ProgressReported", agreement, 4),
    ], "signing, registration and its own three reports, oldest first, once each"
    assert pages[0]["summary"] and pages[1]["summary"].startswith(
        f"hctd-hoa-binh registered from agreement {agreement}"
    )
    assert len({e["event_id"] for e in pages}) == 5
    lead_history = (await stack.projections.get("/v1/parties/mttq-hoa-binh/history")).json()["events"]
    assert [(e["agreement_id"], e["sequence"]) for e in lead_history] == [
        (agreement, 1),
        (None, 1),
        (agreement, 5),
    ]


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


async def test_the_overdue_report_of_one_partys_agreements(stack: Stack) -> None:
    """`party_id`: the obligations of the agreements the party is a current party of, whoever
    leads them; paged as the whole report is."""
    red_cross = (await stack.sign(sign_body()))["agreement_id"]  # mttq-hoa-binh and hctd-hoa-binh
    poverty = await stack.sign(poverty_programme("sldtbxh-hoa-binh", "mttq-hoa-binh", "9/CTPH-MTTQ-SLĐ"))
    await stack.wait_for_position(poverty["position"])

    async def overdue(period: str, **params: Any) -> list[tuple[str, str, str]]:
        response = await stack.projections.get("/v1/reports/overdue", params={"period": period, **params})
        assert response.status_code == 200, response.text
        assert response.json()["period"] == period
        return [
            (o["agreement_id"], o["obligation_id"], o["lead_party_id"])
            for o in response.json()["obligations"]
        ]

    everything = await overdue("2024")
    mine = {red_cross, poverty["agreement_id"]}
    assert {a for a, _, _ in everything} == mine
    of_front = await overdue("2024", party_id="mttq-hoa-binh")
    assert of_front == everything  # a party of both: led by itself, the Red Cross, the department
    assert {lead for _, _, lead in of_front} == {"mttq-hoa-binh", "sldtbxh-hoa-binh"}
    assert await overdue("2024", party_id="hctd-hoa-binh") == [o for o in everything if o[0] == red_cross]
    assert await overdue("2024", party_id="sldtbxh-hoa-binh") == [
        (poverty["agreement_id"], "giam-ngheo", "sldtbxh-hoa-binh")
    ]
    assert await overdue("2024", party_id="nobody") == []
    # The quarterly obligation the Red Cross leads: in the Front's report too, not the department's.
    assert await overdue("2024-Q3", party_id="mttq-hoa-binh") == [
        (red_cross, "tuyen-truyen", "hctd-hoa-binh")
    ]
    assert await overdue("2024-Q3", party_id="sldtbxh-hoa-binh") == []

    # Paged one by one, the filter holds on every page and the pages make the whole.
    walked: list[tuple[str, str, str]] = []
    cursor = None
    while True:
        page = await overdue_page(
            stack, {"period": "2024", "party_id": "mttq-hoa-binh", "limit": 1, "cursor": cursor}
        )
        walked.extend(
            (o["agreement_id"], o["obligation_id"], o["lead_party_id"]) for o in page["obligations"]
        )
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert walked == of_front

    refused = await stack.projections.get(
        "/v1/reports/overdue", params={"period": "2024", "party_id": "Not A Slug"}
    )
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["loc"] == ["query", "party_id"]


async def overdue_page(stack: Stack, params: dict[str, Any]) -> dict[str, Any]:
    response = await stack.projections.get(
        "/v1/reports/overdue", params={k: v for k, v in params.items() if v is not None}
    )
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


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


# Decision 14: the search. Titles like the seeds' (deploy/demo/agreements.json), in signing order.
TOGETHER = "Quy chế phối hợp Chuyển đổi số Quảng Ngãi giai đoạn 2025-2030"
SCATTERED = "Chương trình phối hợp giữa Ủy ban MTTQ Việt Nam tỉnh Quảng Ngãi và Sở Khoa học về chuyển đổi số"
ELSEWHERE = "Kế hoạch phối hợp Chuyển đổi số tỉnh Bình Định năm 2024"
UNRELATED = "Chương trình phối hợp giảm nghèo bền vững"


async def sign_titles(stack: Stack, *signings: tuple[str, str, str]) -> list[str]:
    """Signs (title, locality, document number) in order, waits until all are read; their ids."""
    ids = []
    for title, locality, number in signings:
        signed = await stack.sign(sign_body(title=title, locality=locality, document_number=number))
        await stack.wait_for_position(signed["position"])
        ids.append(signed["agreement_id"])
    return ids


async def search(stack: Stack, q: str, **params: Any) -> dict[str, Any]:
    response = await stack.projections.get("/v1/agreements", params={"q": q, **params})
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


async def found(stack: Stack, q: str) -> list[str]:
    return [a["agreement_id"] for a in (await search(stack, q))["agreements"]]


async def test_decision_14_search_wants_every_word_in_any_order_best_first(stack: Stack) -> None:
    together, scattered, elsewhere, unrelated = await sign_titles(
        stack,
        (TOGETHER, "Quảng Ngãi", "15/QC-UBND-MTTQ"),
        (SCATTERED, "Quảng Ngãi", "07/CTPH-MTTQ-SKHCN"),
        (ELSEWHERE, "Bình Định", "21/KH-UBND"),
        (UNRELATED, "Thái Nguyên", "03/CTPH-MTTQ"),
    )
    # Any order, any case, with or without diacritics: the words side by side rank first.
    for q in ("chuyen doi so quang ngai", "Quảng Ngãi CHUYỂN ĐỔI SỐ", "ngai SO quang Doi chuyen"):
        assert await found(stack, q) == [together, scattered], q
    # Every word is required.
    assert await found(stack, "chuyen doi so binh dinh") == [elsewhere]
    assert await found(stack, "quang ngai binh dinh") == []
    assert await found(stack, "giam ngheo quang ngai") == []
    # Equally good matches (each holds `chuyen doi so` as it is) come in the order of signing.
    assert await found(stack, "Chuyển đổi số") == [together, scattered, elsewhere]
    # A word may be part of a longer one: "pho" of "phối", "vi" of "Việt" (only in one title).
    assert await found(stack, "pho") == [together, scattered, elsewhere, unrelated]
    assert await found(stack, "chuyen doi so vi") == [scattered]
    assert await found(stack, "ke hoach chuyen") == [elsewhere]
    # LIKE's own characters are taken literally.
    assert await found(stack, "2025-2030") == [together]
    for q in ("2025_2030", "%", "_", "\\", "so%"):
        assert await found(stack, q) == [], q

    # Every query that matched as one substring before still matches: its words are adjacent.
    texts = {
        together: search_key(f"15/QC-UBND-MTTQ {TOGETHER}"),
        scattered: search_key(f"07/CTPH-MTTQ-SKHCN {SCATTERED}"),
        elsewhere: search_key(f"21/KH-UBND {ELSEWHERE}"),
        unrelated: search_key(f"03/CTPH-MTTQ {UNRELATED}"),
    }
    for q in ("chuyen doi", "uyen doi so qua", "doi so quang ngai giai doan 2025-2030", "15/qc-ubnd",
              "ctph-mttq", "phoi hop", "MTTQ Việt", "2024", "ng"):  # fmt: skip
        before = {agreement for agreement, text in texts.items() if search_key(q) in text}
        assert before and before <= set(await found(stack, q)), q


async def test_decision_14_paging_through_a_search_gives_every_match_once(stack: Stack) -> None:
    titles = [
        "Kế hoạch chuyển đổi số năm 2025",
        "Phối hợp chuyển giao, đổi mới, số liệu",  # every word, inside others
        "Chuyển đổi số quốc gia và chuyển đổi xanh",
        "Chuyên đề đối ngoại trên sông",  # "so" only inside "song"
        "Số hóa và chuyển đổi",
        "Chuyển đổi sổ sách kế toán",
        "Giảm nghèo bền vững",  # no match
    ]
    ids = await sign_titles(stack, *[(t, "Hòa Bình", f"{n + 1}/KH-CDS") for n, t in enumerate(titles)])
    # The same number and title in two localities: one search text, so exactly one rank.
    twins = await sign_titles(
        stack,
        *[("Phối hợp chuyển giao, đổi mới, số liệu", place, "9/KH-CDS") for place in ("Sơn La", "Lai Châu")],
    )
    everything = await search(stack, "chuyen doi so")
    assert everything["next_cursor"] is None
    order = [a["agreement_id"] for a in everything["agreements"]]
    # strict_word_similarity: 1 for the words side by side (ties by signing), then words apart
    # (0.79), "so" inside "song" (0.69), and the three "chuyển giao, đổi mới, số liệu" (0.64,
    # by signing: the twins have one search text, so exactly one rank).
    assert order == [ids[0], ids[2], ids[5], ids[4], ids[3], ids[1], *twins]
    for limit in (1, 2, 3, 8):
        pages: list[str] = []
        cursors = []
        params: dict[str, Any] = {"limit": limit}
        for _ in range(len(order) + 2):  # a full last page is followed by an empty one
            page = await search(stack, "chuyen doi so", **params)
            pages += [a["agreement_id"] for a in page["agreements"]]
            assert len(page["agreements"]) <= limit
            if page["next_cursor"] is None:
                break
            cursors.append(page["next_cursor"])
            params["cursor"] = page["next_cursor"]
        assert pages == order, limit
        assert all(c.count(".") == 1 and not c.isdigit() for c in cursors)


async def test_decision_14_a_cursor_not_given_for_that_listing_is_a_400(stack: Stack) -> None:
    await sign_titles(stack, (TOGETHER, "Quảng Ngãi", "15/QC-UBND-MTTQ"), (ELSEWHERE, "Bình Định", "21/KH"))
    listing = (await stack.projections.get("/v1/agreements", params={"cursor": "x"})).json()
    ranked_cursor = (await search(stack, "chuyen doi so", limit=1))["next_cursor"]
    listing_cursor = (await stack.projections.get("/v1/agreements", params={"limit": 1})).json()[
        "next_cursor"
    ]
    for cursor in (
        "x",
        listing_cursor,
        "1.2.3",
        "1.",
        ".1",
        f"{0x3F800001}.1",
        f"1.{2**63}",
        "１.1",
        "1.2\n",
    ):
        response = await stack.projections.get(
            "/v1/agreements", params={"q": "chuyen doi so", "cursor": cursor}
        )
        assert response.status_code == 400 and response.json() == listing, cursor
        assert response.headers["content-type"] == "application/problem+json"
    # A search's cursor is no listing's cursor; over 40 characters is a 422, as before.
    without_q = await stack.projections.get("/v1/agreements", params={"cursor": ranked_cursor})
    assert without_q.status_code == 400 and without_q.json() == listing
    too_long = await stack.projections.get("/v1/agreements", params={"q": "so", "cursor": "1." + "0" * 39})
    assert too_long.status_code == 422
    # A `q` with no word in it (spaces, a lone combining mark) is the listing, cursors and all.
    plain = (await stack.projections.get("/v1/agreements", params={"limit": 1})).json()
    for q in ("   ", "\u0301"):
        assert (await search(stack, q, limit=1)) == plain
        rest = await search(stack, q, limit=1, cursor=plain["next_cursor"])
        assert rest == (await stack.projections.get(
            "/v1/agreements", params={"limit": 1, "cursor": plain["next_cursor"]}
        )).json()  # fmt: skip


def plan_nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [node, *(n for child in node.get("Plans", []) for n in plan_nodes(child))]


async def test_decision_14_each_word_is_looked_up_in_the_trigram_index(stack: Stack) -> None:
    """The LIKE of every word is an Index Cond of the GIN trigram index, in the live schema and
    in a shadow built with the same migrations (pg_trgm once, in `public`, for both)."""
    await sign_titles(stack, (TOGETHER, "Quảng Ngãi", "15/QC-UBND-MTTQ"))
    shadow = "shadow_search_test"
    shadow_pool = await create_pool(stack.database_url, min_size=1, max_size=1, schema=shadow)
    try:
        await migrate(shadow_pool, "projections", MIGRATIONS, schema=shadow)
    finally:
        await shadow_pool.close()
    words = queries.search_words("Quảng Ngãi chuyển đổi số")
    sql, args = queries.search_query(party_id=None, locality=None, status=None, words=words, after=None)
    for schema in ("projections", shadow):
        async with stack.pool.acquire() as conn, conn.transaction():
            await conn.execute(f"SET LOCAL search_path TO {schema}, public")
            # Only a bitmap scan is left to choose: the index must be able to answer the LIKEs.
            await conn.execute("SET LOCAL enable_seqscan = off")
            await conn.execute("SET LOCAL enable_indexscan = off")
            [plan] = json.loads(await conn.fetchval(f"EXPLAIN (FORMAT JSON) {sql}", *args))
            [scan] = [node for node in plan_nodes(plan["Plan"]) if node["Node Type"] == "Bitmap Index Scan"]
            assert scan["Index Name"] == "agreements_search_text_trgm", plan
            for word in words:
                assert f"(search_text ~~ '%{word}%'::text)" in scan["Index Cond"], word
            live = schema == "projections"
            assert await conn.fetchval(f"SELECT count(*) FROM ({sql}) m", *args) == (1 if live else 0)
    extensions = await stack.pool.fetch(
        "SELECT extnamespace::regnamespace::text AS schema FROM pg_extension WHERE extname = 'pg_trgm'"
    )
    assert [r["schema"] for r in extensions] == ["public"]


async def test_a_report_rewrites_only_the_obligation_row_it_changes(stack: Stack) -> None:
    """The projection writes the obligation rows that differ from the stored ones, not the whole
    agreement's: after a report, every other row of the agreement is the same tuple (ctid)."""
    signed = await stack.sign(sign_body())
    agreement = signed["agreement_id"]
    await obligations(stack, "hctd-hoa-binh", signed["position"])

    async def rows() -> dict[tuple[str, str], tuple[str, Any]]:
        found = await stack.pool.fetch(
            """SELECT party_id, obligation_id, ctid::text AS ctid, latest_report
               FROM projections.party_obligations WHERE agreement_id = $1""",
            agreement,
        )
        return {(r["party_id"], r["obligation_id"]): (r["ctid"], r["latest_report"]) for r in found}

    before = await rows()
    assert len(before) >= 3
    reported = await post(
        stack,
        f"/v1/agreements/{agreement}/progress-reports",
        report_body(period="2024", completion_percent=40),
    )
    await obligations(stack, "hctd-hoa-binh", reported["position"])
    after = await rows()
    assert after.keys() == before.keys()
    moved = {key for key in after if after[key][0] != before[key][0]}
    assert moved == {("hctd-hoa-binh", "nhan-dao")}, (before, after)
    assert after[("hctd-hoa-binh", "nhan-dao")][1] is not None
