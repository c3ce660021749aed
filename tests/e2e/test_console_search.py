"""The console's search (`/tim-kiem`) and a body's page (`/don-vi/{id}`) on the real stack:
registry, relay and projections on real PostgreSQL and Kafka, the console over real HTTP, and
Debian's chromium with JavaScript switched off (the fixtures and helpers of test_console.py).

Three agreements are signed: one in Phú Thọ about chuyển đổi số, one in Hòa Bình (merged into Phú
Thọ on 1 July 2025) whose lead, Hòa Bình's Labour department, then ceased and was succeeded by
Phú Thọ's Home Affairs department (the demo official's body), and one in Thái Nguyên. A search
typed without diacritics finds the first; the province filter as now finds the Hòa Bình one under
Phú Thọ; filters narrow, an empty result says so, pages follow the cursor, and bad input (an
unknown document type, too long a text, a forged cursor) gets a Vietnamese message and no 500.
The body's page shows the predecessor and the successor with links and dates, the inherited
obligation with its report form, and its history in pages. No request leaves 127.0.0.1, and
axe-core finds 0 violations at WCAG 2.2 AA on each page in each state. Screenshots:
`.local/console-screenshots/search.png`, `body.png` (and a few states beside them).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Page

from deploy.local.processes import free_port
from services.console.app import create_app
from services.console.settings import ConsoleSettings
from services.console.vietnamese import VIETNAM
from tests.e2e.test_console import (
    WCAG_22_AA,
    Recorder,
    agreement_body,
    recorded_context,
    shot,
    sign_in,
)
from tests.e2e.test_docs_offline import stays_on_this_machine
from tests.e2e.test_succession import transfers_done
from tests.support.builders import poverty_programme
from tests.support.stack import Stack, serve, stop_server

PREDECESSOR = "sldtbxh-hoa-binh"
SUCCESSOR = "snv-phu-tho"  # the demo official's body (services/console/officials.py)
FRONT = "mttq-hoa-binh"
DIGITAL_TITLE = "Chương trình phối hợp về chuyển đổi số giữa Ủy ban MTTQ tỉnh và Sở Nội vụ"
POVERTY_NUMBER = "05/CTr-SLĐTBXH-MTTQ"
POVERTY_OBLIGATION = "Phối hợp thực hiện giảm nghèo bền vững"
PAGE_SIZE = 2  # three agreements: two pages


def thai_nguyen_plan(today: dt.date) -> dict[str, Any]:
    body = agreement_body(today)
    body.update(
        document_number="12/KH-MTTQ-HND",
        kind="plan",
        title="Kế hoạch phối hợp tuyên truyền pháp luật cho hội viên nông dân",
        locality="Thái Nguyên",
        parties=[
            {"party_id": "mttq-thai-nguyen", "name": "Ủy ban MTTQ Việt Nam tỉnh Thái Nguyên", "role": "lead"},
            {"party_id": "hnd-thai-nguyen", "name": "Hội Nông dân tỉnh Thái Nguyên", "role": "member"},
        ],
        obligations=[
            {
                "obligation_id": "tuyen-truyen",
                "title": "Tuyên truyền pháp luật",
                "lead_party_id": "hnd-thai-nguyen",
                "cadence": "annual",
            }
        ],
    )
    return body


@pytest.fixture
async def console(stack: Stack) -> AsyncIterator[str]:
    """test_console.py's console, with pages of two so that three agreements make two."""
    settings = ConsoleSettings(
        registry_url=stack.registry_url,
        projections_url=stack.projections_url,
        session_secret="t" * 40,
        page_size=PAGE_SIZE,
    )
    port = free_port()
    server, task = await serve(create_app(settings), port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await stop_server(server, task)


async def signed_as(stack: Stack, party_id: str, body: dict[str, Any]) -> dict[str, Any]:
    headers = stack.bearer(stack.token(party_ids=[party_id]))
    response = await stack.registry.post("/v1/agreements", json=body, headers=headers)
    assert response.status_code == 201, response.text
    signed: dict[str, Any] = response.json()
    return signed


async def three_agreements_and_a_succession(stack: Stack) -> dict[str, str]:
    today = dt.datetime.now(VIETNAM).date()
    await stack.register_party(SUCCESSOR, "Sở Nội vụ tỉnh Phú Thọ", province="Phú Thọ", unit_code="25")
    digital = await signed_as(stack, "mttq-phu-tho", agreement_body(today))
    poverty = await signed_as(stack, PREDECESSOR, poverty_programme(PREDECESSOR, FRONT, POVERTY_NUMBER))
    plan = await signed_as(stack, "mttq-thai-nguyen", thai_nguyen_plan(today))
    succession = {
        "effective_on": "2025-07-01",
        "legal_basis": "45/2025/NĐ-CP",
        "successor_party_id": SUCCESSOR,
    }
    recorded = await stack.registry.post(f"/v1/parties/{PREDECESSOR}/succession", json=succession)
    assert recorded.status_code == 200, recorded.text
    await transfers_done(stack, PREDECESSOR)
    events = (await stack.registry.get(f"/v1/agreements/{poverty['agreement_id']}/events")).json()["events"]
    last = max(event["position"] for event in events)
    await stack.wait_for_position(max(last, plan["position"], recorded.json()["position"]))
    return {
        "digital": digital["agreement_id"],
        "poverty": poverty["agreement_id"],
        "plan": plan["agreement_id"],
    }


async def search(page: Page, console: str, **fields: str) -> None:
    """Fill the form as a person would (every field, the rest left at "all") and send it."""
    await page.goto(f"{console}/tim-kiem")
    await page.fill("#q", fields.get("q", ""))
    for name in ("locality", "document_type", "status"):
        await page.select_option(f"#{name}", fields.get(name, ""))
    await page.click("form[role='search'] button:has-text('Tìm kiếm')")


async def result_numbers(page: Page) -> list[str]:
    return [await link.inner_text() for link in await page.locator("tr.result td:first-child a").all()]


async def test_search_and_a_bodys_page_with_javascript_off(stack: Stack, console: str, chromium: Any) -> None:
    ids = await three_agreements_and_a_succession(stack)
    recorder = Recorder()
    context = await chromium.new_context(
        java_script_enabled=False, locale="vi-VN", viewport={"width": 1280, "height": 900}
    )
    await recorder.attach(context)
    page = await context.new_page()
    await sign_in(page, console)

    # The header leads to the search, and marks it as the current page there.
    await (
        page.get_by_role("navigation", name="Điều hướng chính")
        .get_by_role("link", name="Tìm kiếm thỏa thuận")
        .click()
    )
    assert page.url == f"{console}/tim-kiem"
    current = page.locator("header nav a[aria-current='page']")
    assert await current.inner_text() == "Tìm kiếm thỏa thuận"
    assert await page.locator("#ket-qua").count() == 0

    # Typed without diacritics, it finds the title written with them.
    await search(page, console, q="chuyen doi so")
    assert "q=chuyen+doi+so" in page.url
    assert await result_numbers(page) == ["07/CTPH-MTTQ-SNV"]
    row = await page.locator("tr.result").inner_text()
    assert DIGITAL_TITLE in row and "Chương trình phối hợp" in row and "Còn hiệu lực" in row
    today = dt.datetime.now(VIETNAM).date()
    assert f"01/01/{today.year - 1} – 31/12/{today.year + 1}" in row
    assert await page.input_value("#q") == "chuyen doi so"  # the search stays in the form
    await shot(page, "search.png")

    # Province as now: Phú Thọ also finds what was signed in Hòa Bình; the type narrows to it.
    await search(page, console, locality="Phú Thọ", document_type="CTr")
    assert await result_numbers(page) == [POVERTY_NUMBER]
    assert "Hòa Bình\nnay thuộc Phú Thọ" in await page.locator("tr.result").inner_text()
    await search(page, console, locality="Thái Nguyên")
    assert await result_numbers(page) == ["12/KH-MTTQ-HND"]

    # Nothing found: said so.
    await search(page, console, q="chuyen doi so", status="closed")
    assert await page.locator("tr.result").count() == 0
    assert "Không tìm thấy thỏa thuận nào phù hợp" in await page.inner_text("#noi-dung")
    await shot(page, "search-empty.png")

    # Pages of two through the cursor, the search kept; the last page has no "next".
    await search(page, console)
    first = await result_numbers(page)
    assert len(first) == PAGE_SIZE
    await page.get_by_role("link", name="Trang sau").click()
    assert "cursor=" in page.url
    second = await result_numbers(page)
    assert sorted(first + second) == sorted(["07/CTPH-MTTQ-SNV", POVERTY_NUMBER, "12/KH-MTTQ-HND"])
    assert await page.get_by_role("link", name="Trang sau").count() == 0
    await page.get_by_role("link", name="Về trang đầu").click()
    assert await result_numbers(page) == first

    # Bad input: a message in Vietnamese, beside the field when there is one; never a 500.
    unknown_type = await page.goto(f"{console}/tim-kiem?q=&document_type=XYZ")
    assert unknown_type is not None and unknown_type.status == 422
    assert "Vui lòng chọn một loại văn bản" in await page.inner_text("#loi-document_type")
    assert await page.get_attribute("#document_type", "aria-invalid") == "true"
    await shot(page, "search-error.png")
    too_long = await page.goto(f"{console}/tim-kiem?q={'a' * 301}")
    assert too_long is not None and too_long.status == 422
    assert "tối đa 300 ký tự" in await page.inner_text("#loi-q")
    for forged in ("forged", "1" * 41, "99999999999.1"):  # not ours; too long; a rank out of range
        refused = await page.goto(f"{console}/tim-kiem?q=chuyen&cursor={forged}")
        assert refused is not None and refused.status in (400, 422), (forged, refused.status)
        assert "Liên kết “Trang sau” không hợp lệ" in await page.inner_text(".error-summary")
        assert await page.locator("tr.result").count() == 0

    # The agreement page links its parties to their pages: the successor, its predecessor.
    await page.goto(f"{console}/thoa-thuan/{ids['poverty']}")
    parties = page.locator("#cac-ben").locator("..")
    former = parties.get_by_role("link", name="Sở Lao động – Thương binh và Xã hội tỉnh Hòa Bình")
    assert await former.get_attribute("href") == f"/don-vi/{PREDECESSOR}"
    # The successor's own row, and its name where the former party's row says who succeeded it.
    links = parties.get_by_role("link", name="Sở Nội vụ tỉnh Phú Thọ")
    assert [await link.get_attribute("href") for link in await links.all()] == [f"/don-vi/{SUCCESSOR}"] * 2
    await links.first.click()
    assert page.url == f"{console}/don-vi/{SUCCESSOR}"
    assert await page.inner_text("h1") == "Sở Nội vụ tỉnh Phú Thọ"
    predecessor = page.locator("tr.predecessor")
    assert await predecessor.count() == 1
    assert (
        "01/07/2025" in await predecessor.inner_text() and "45/2025/NĐ-CP" in await predecessor.inner_text()
    )
    inherited = page.locator("tr.obligation", has_text=POVERTY_OBLIGATION)
    assert "Kế thừa từ" in await inherited.inner_text() and "01/07/2025" in await inherited.inner_text()
    report_link = inherited.get_by_role("link", name=f"Báo cáo: {POVERTY_OBLIGATION}")
    assert await report_link.get_attribute("href") == f"/bao-cao/{ids['poverty']}/giam-ngheo"
    agreement_link = inherited.get_by_role("link", name=POVERTY_NUMBER)
    assert await agreement_link.get_attribute("href") == f"/thoa-thuan/{ids['poverty']}"
    # Its history, oldest first, in pages of two.
    seen = [await row.get_attribute("data-type") for row in await page.locator("tr.history").all()]
    assert seen == ["PartyRegistered", "AgreementSigned"]
    await shot(page, "body.png")
    while await page.locator("#lich-su").locator("..").get_by_role("link", name="Trang sau").count():
        await page.locator("#lich-su").locator("..").get_by_role("link", name="Trang sau").click()
        seen += [await row.get_attribute("data-type") for row in await page.locator("tr.history").all()]
    assert "SuccessionRecorded" in seen and "ObligationsTransferred" in seen, seen

    # The predecessor's page: ceased, its successor linked with the date, nothing held now.
    await page.goto(f"{console}/don-vi/{SUCCESSOR}")
    await predecessor.get_by_role("link").click()
    assert page.url == f"{console}/don-vi/{PREDECESSOR}"
    assert "Đã chấm dứt hoạt động" in await page.inner_text("#noi-dung")
    successor = page.locator("tr.successor")
    assert "01/07/2025" in await successor.inner_text()
    assert await successor.get_by_role("link").get_attribute("href") == f"/don-vi/{SUCCESSOR}"
    assert "Đơn vị hiện không chủ trì hoặc phối hợp nhiệm vụ nào" in await page.inner_text("#noi-dung")
    assert await page.get_by_role("link", name="Báo cáo:").count() == 0  # not a body the person acts for
    await shot(page, "body-predecessor.png")

    # "Việc của đơn vị" links the person's body to its page.
    await page.goto(f"{console}/")
    await page.get_by_role("link", name="Sở Nội vụ tỉnh Phú Thọ").first.click()
    assert page.url == f"{console}/don-vi/{SUCCESSOR}"

    # A body not in the directory, an id that cannot be one, a forged history cursor.
    for missing in ("khong-co-don-vi-nay", "KHONG%20HOP%20LE"):
        answer = await page.goto(f"{console}/don-vi/{missing}")
        assert answer is not None and answer.status == 404
        assert "Không tìm thấy đơn vị này" in await page.inner_text("#noi-dung")
    forged_history = await page.goto(f"{console}/don-vi/{SUCCESSOR}?lich_su=forged")
    assert forged_history is not None and forged_history.status == 400
    assert "không hợp lệ" in await page.locator("#lich-su").locator("..").inner_text()
    assert await page.locator("tr.predecessor").count() == 1  # the rest of the page is drawn

    await context.close()
    assert recorder.requested and recorder.outside == []
    assert all(stays_on_this_machine(url) for url in recorder.requested)

    await every_state_passes_axe(chromium, console)


async def every_state_passes_axe(chromium: Any, console: str) -> None:
    """axe-core needs script in the page: a context with JavaScript on, the pages unchanged."""
    context, recorder = await recorded_context(chromium)
    page = await context.new_page()
    axe = Axe()
    results: dict[str, list[str]] = {}
    await sign_in(page, console)
    states = {
        "search-form": "/tim-kiem",
        "search-results": "/tim-kiem?q=chuyen+doi+so&locality=&document_type=&status=",
        "search-next-page": "/tim-kiem?q=&locality=&document_type=&status=",
        "search-empty": "/tim-kiem?q=chuyen+doi+so&locality=&document_type=&status=closed",
        "search-field-error": "/tim-kiem?q=&locality=Atlantis&document_type=XYZ&status=",
        "search-cursor-error": "/tim-kiem?q=chuyen&cursor=forged",
        "body-with-predecessor": f"/don-vi/{SUCCESSOR}",
        "body-with-successor": f"/don-vi/{PREDECESSOR}",
        "body-history-error": f"/don-vi/{SUCCESSOR}?lich_su=forged",
        "body-not-found": "/don-vi/khong-co-don-vi-nay",
    }
    for name, path in states.items():
        await page.goto(f"{console}{path}")
        if name == "search-next-page":
            await page.get_by_role("link", name="Trang sau").click()
        found = await axe.run(page, options=WCAG_22_AA)
        results[name] = [
            f"{v['id']}: {[n['target'] for n in v['nodes']]}" for v in found.response["violations"]
        ]
    await context.close()
    assert results == {name: [] for name in states}, results
    assert recorder.outside == []
