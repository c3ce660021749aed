"""The officials' console (services/console) on the real stack: registry, relay and projections
on real PostgreSQL and Kafka, the console served over real HTTP by uvicorn, and Debian's chromium
driven by Playwright with JavaScript switched off.

A person signs in (development sign-in), sees the obligation of an agreement the test signed
among what is overdue, reports it through the form, and sees the report on the agreement page
(read-your-writes). The same form sent again makes no second event; a period outside the term
gets the Vietnamese message beside its field and writes nothing; a forged CSRF token is refused
and writes nothing. No request the browser makes leaves 127.0.0.1. axe-core (as bundled by
`axe-playwright-python`) then checks every page at WCAG 2.2 AA: 0 violations. Screenshots of
each page are left in `.local/console-screenshots/`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from axe_playwright_python.async_playwright import Axe
from playwright.async_api import BrowserContext, Page, Request, Route

from services.console.vietnamese import VIETNAM
from tests.e2e.test_docs_offline import stays_on_this_machine
from tests.support.stack import Stack

SCREENSHOTS = Path(__file__).parents[2] / ".local" / "console-screenshots"
OFFICIAL = "demo-tran-van-binh"  # acts for snv-phu-tho (services/console/officials.py)
OBLIGATION_TITLE = "Triển khai chuyển đổi số trong công tác phối hợp"
WCAG_22_AA = {
    "runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"]},
    "resultTypes": ["violations"],
}


def agreement_body(today: dt.date) -> dict[str, Any]:
    year = today.year
    return {
        "document_number": "07/CTPH-MTTQ-SNV",
        "kind": "program",
        "title": "Chương trình phối hợp về chuyển đổi số giữa Ủy ban MTTQ tỉnh và Sở Nội vụ",
        "locality": "Phú Thọ",
        "signed_on": f"{year - 1}-01-15",
        "term": {"start": f"{year - 1}-01-01", "end": f"{year + 1}-12-31"},
        "parties": [
            {
                "party_id": "mttq-phu-tho",
                "name": "Ủy ban MTTQ Việt Nam tỉnh Phú Thọ",
                "role": "lead",
                "signatory": {"name": "Nguyễn Văn A", "title": "Chủ tịch"},
            },
            {
                "party_id": "snv-phu-tho",
                "name": "Sở Nội vụ tỉnh Phú Thọ",
                "role": "member",
                "signatory": {"name": "Trần Văn B", "title": "Giám đốc"},
            },
        ],
        "legal_basis": [{"reference": "43-CT/TW", "issuer": "Ban Bí thư"}],
        "obligations": [
            {
                "obligation_id": "chuyen-doi-so",
                "title": OBLIGATION_TITLE,
                "lead_party_id": "snv-phu-tho",
                "supporting_party_ids": ["mttq-phu-tho"],
                "cadence": "annual",
            }
        ],
    }


class Recorder:
    """Every request a context makes; those for another host are aborted and listed."""

    def __init__(self) -> None:
        self.requested: list[str] = []
        self.outside: list[str] = []

    async def attach(self, context: BrowserContext) -> None:
        def record(request: Request) -> None:
            self.requested.append(request.url)

        async def only_this_machine(route: Route) -> None:
            if stays_on_this_machine(route.request.url):
                await route.fallback()
            else:
                self.outside.append(route.request.url)
                await route.abort()

        context.on("request", record)
        await context.route("**/*", only_this_machine)


async def signed_for_today(stack: Stack, today: dt.date) -> str:
    """Signs `agreement_body(today)` as MTTQ Phú Thọ and waits until the projections have it."""
    signer = stack.bearer(stack.token(party_ids=["mttq-phu-tho"]))
    signed = (await stack.registry.post("/v1/agreements", json=agreement_body(today), headers=signer)).json()
    await stack.wait_for_position(signed["position"])
    return str(signed["agreement_id"])


async def recorded_context(chromium: Any, **options: Any) -> tuple[BrowserContext, Recorder]:
    """A Vietnamese-locale browser context whose requests are recorded (those for another host
    aborted)."""
    recorder = Recorder()
    context = await chromium.new_context(locale="vi-VN", viewport={"width": 1280, "height": 900}, **options)
    await recorder.attach(context)
    return context, recorder


async def sign_in(page: Page, console: str) -> None:
    await page.goto(f"{console}/dang-nhap")
    await page.check(f"#can-bo-{OFFICIAL}")
    await page.click("button:has-text('Đăng nhập')")
    assert page.url == f"{console}/", page.url


async def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=SCREENSHOTS / name, full_page=True)


async def progress_reports(stack: Stack, agreement_id: str) -> list[dict[str, Any]]:
    response = await stack.registry.get(f"/v1/agreements/{agreement_id}/events")
    assert response.status_code == 200, response.text
    return [event for event in response.json()["events"] if ".ProgressReported." in event["type"]]


async def form_values(page: Page) -> dict[str, str]:
    values: dict[str, str] = await page.eval_on_selector_all(
        "form[action^='/bao-cao'] [name]", "(els) => Object.fromEntries(els.map((e) => [e.name, e.value]))"
    )
    return values


async def test_an_official_reports_with_javascript_off(stack: Stack, console: str, chromium: Any) -> None:
    today = dt.datetime.now(VIETNAM).date()
    last_year = str(today.year - 1)
    agreement_id = await signed_for_today(stack, today)

    recorder = Recorder()
    context = await chromium.new_context(
        java_script_enabled=False, locale="vi-VN", viewport={"width": 1280, "height": 900}
    )
    await recorder.attach(context)
    page = await context.new_page()
    await page.goto(f"{console}/dang-nhap")
    assert await page.get_attribute("html", "lang") == "vi"
    assert "Đăng nhập phát triển (chỉ dùng thử)" in await page.inner_text("h1")
    await shot(page, "1-dang-nhap.png")
    await sign_in(page, console)

    # My body's work: the obligation, and last year's report missing from its lead (overdue).
    overdue = page.locator("section[aria-labelledby='qua-han'] tr.overdue")
    assert await overdue.count() == 1
    assert OBLIGATION_TITLE in await overdue.inner_text()
    assert "Chưa có báo cáo" in await page.inner_text("main")
    await shot(page, "2-viec-cua-don-vi.png")

    # A period outside the term: the registry's 422, in Vietnamese beside the field; nothing written.
    await overdue.get_by_role("link", name=f"Báo cáo: {OBLIGATION_TITLE}").click()
    assert "/bao-cao/" in page.url
    await shot(page, "3-bao-cao.png")
    await page.fill("#period", str(today.year + 5))
    await page.select_option("#status", "completed")
    await page.click("button:has-text('Gửi báo cáo')")
    assert "nằm trong thời hạn của thỏa thuận" in await page.inner_text("#loi-period")
    assert await page.get_attribute("#period", "aria-invalid") == "true"
    assert await page.input_value("#period") == str(today.year + 5)  # shown again with the values
    await shot(page, "4-bao-cao-loi.png")
    assert await progress_reports(stack, agreement_id) == []

    # The report, through the form with JavaScript off; then the agreement page shows it.
    await page.fill("#period", last_year)
    await page.fill("#completion_percent", "100")
    await page.fill("#summary", "Đã triển khai phần mềm quản lý văn bản cho 100% phòng chuyên môn")
    sent = await form_values(page)
    report_url = page.url
    await page.click("button:has-text('Gửi báo cáo')")
    assert f"/thoa-thuan/{agreement_id}?min_position=" in page.url
    assert "Đã ghi báo cáo" in await page.inner_text("main")
    report_row = page.locator("tr.report")
    assert await report_row.count() == 1
    assert f"Năm {last_year}" in await report_row.inner_text()
    assert OBLIGATION_TITLE in await report_row.inner_text()
    timeline = page.locator("li.event")
    assert [await item.get_attribute("data-type") for item in await timeline.all()] == [
        "AgreementSigned",
        "ProgressReported",
    ]
    await shot(page, "5-thoa-thuan.png")
    reports = await progress_reports(stack, agreement_id)
    assert len(reports) == 1
    assert reports[0]["actor"] == OFFICIAL  # the person, not the console
    assert reports[0]["data"]["period"] == last_year

    # The same form sent again (a double click, a resent form): the same answer, no second event.
    again = await context.request.post(report_url, form=sent)
    assert again.ok, again.status
    assert f"/thoa-thuan/{agreement_id}" in again.url
    assert len(await progress_reports(stack, agreement_id)) == 1

    # A forged CSRF token, and none at all: refused in Vietnamese, nothing written.
    for csrf in ("forged", ""):
        forged = await context.request.post(
            report_url,
            form={**sent, "csrf": csrf, "idempotency_key": f"forged-{csrf}", "period": str(today.year)},
        )
        assert forged.status == 403
        assert "Yêu cầu bị từ chối" in await forged.text()
    assert len(await progress_reports(stack, agreement_id)) == 1

    # Reported: no longer overdue.
    await page.goto(f"{console}/")
    assert await page.locator("section[aria-labelledby='qua-han'] tr.overdue").count() == 0

    await context.close()
    assert recorder.requested, "the recorder saw nothing"
    assert recorder.outside == []
    assert all(stays_on_this_machine(url) for url in recorder.requested)
    assert f"{console}/static/console.css" in recorder.requested

    await every_page_passes_axe(chromium, console, agreement_id, report_url)


async def every_page_passes_axe(chromium: Any, console: str, agreement_id: str, report_url: str) -> None:
    """axe-core needs script in the page: a context with JavaScript on, the pages unchanged."""
    context, recorder = await recorded_context(chromium)
    page = await context.new_page()
    axe = Axe()
    results: dict[str, list[str]] = {}

    async def check(name: str) -> None:
        found = await axe.run(page, options=WCAG_22_AA)
        results[name] = [
            f"{v['id']}: {[n['target'] for n in v['nodes']]}" for v in found.response["violations"]
        ]

    await page.goto(f"{console}/dang-nhap")
    await check("sign-in")
    await sign_in(page, console)
    await check("my-work")
    await page.goto(report_url)
    await check("report")
    await page.fill("#period", "1999")
    await page.click("button:has-text('Gửi báo cáo')")
    assert await page.locator("#loi-period").count() == 1
    await check("report-refused")
    await page.goto(f"{console}/thoa-thuan/{agreement_id}")
    await check("agreement")
    await context.close()
    assert results == {name: [] for name in results}, results
    assert len(results) == 5
    assert recorder.outside == []
