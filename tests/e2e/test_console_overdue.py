"""The console's overdue report (`/qua-han`, its CSV and its print stylesheet) and "due this
period" on "Việc của đơn vị", on the real stack (registry, relay, projections on real PostgreSQL
and Kafka, the console over real HTTP) in Debian's chromium with JavaScript switched off.

The Front committee of Phú Thọ signs, in the middle of March last year, a programme with the
provincial Red Cross: a quarterly obligation the Red Cross leads (its title begins with "-", as
Vietnamese lists do, and as a spreadsheet formula would), a monthly and an annual one the Front
leads, and a `once` one. The Red Cross and the Home Affairs department sign another programme
without the Front. Some periods are reported. The Front's official then chooses the Front and
last year in the report's form and sees exactly the six periods that have ended without their
lead's report, the first quarter included (the term began inside it); downloads the CSV
(byte order mark, Vietnamese headers, dd/mm/yyyy, the title guarded against formula injection);
prints the page to an A4 PDF with chromium (the print stylesheet hides navigation and forms and
repeats table headers); sees an empty report and the refusals of bad input beside their fields.
No request leaves 127.0.0.1; axe-core finds 0 WCAG 2.2 AA violations in each state. Screenshots
and the PDF are left in `.local/console-screenshots/`.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from typing import Any

from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Page

from services.console.pages.overdue import CSV_HEADER
from services.console.vietnamese import VIETNAM
from tests.e2e.test_console import SCREENSHOTS, WCAG_22_AA, Recorder, recorded_context, shot
from tests.e2e.test_docs_offline import stays_on_this_machine
from tests.support.stack import Stack

FRONT_OFFICIAL = "demo-nguyen-thi-hoa"  # acts for mttq-phu-tho (services/console/officials.py)
FRONT = "Ủy ban MTTQ Việt Nam tỉnh Phú Thọ"
RED_CROSS = "Hội Chữ thập đỏ tỉnh Phú Thọ"
QUARTERLY_TITLE = "- Tuyên truyền, vận động hội viên tham gia phong trào nhân đạo"
MONTHLY_TITLE = "Giao ban công tác phối hợp hằng tháng"
ANNUAL_TITLE = "Sơ kết, tổng kết chương trình phối hợp hằng năm"
ONCE_TITLE = "Hội nghị tổng kết chương trình"
OTHER_TITLE = "Chương trình phối hợp giữa Sở Nội vụ và Hội Chữ thập đỏ tỉnh"
A4_POINTS = (595, 842)  # 210 mm × 297 mm in PDF points, rounded


def signatory(name: str) -> dict[str, str]:
    return {"name": name, "title": "Chủ tịch"}


def front_programme(last: int, next_year: int) -> dict[str, Any]:
    return {
        "document_number": f"12/CTPH-MTTQ-HCTĐ-{last}",
        "kind": "program",
        "title": "Chương trình phối hợp công tác nhân đạo giữa Ủy ban MTTQ tỉnh và Hội Chữ thập đỏ tỉnh",
        "locality": "Phú Thọ",
        "signed_on": f"{last}-03-10",
        "term": {"start": f"{last}-03-15", "end": f"{next_year}-12-31"},
        "parties": [
            {
                "party_id": "mttq-phu-tho",
                "name": FRONT,
                "role": "lead",
                "signatory": signatory("Nguyễn Văn A"),
            },
            {
                "party_id": "hctd-phu-tho",
                "name": RED_CROSS,
                "role": "member",
                "signatory": signatory("Lê Thị B"),
            },
        ],
        "legal_basis": [{"reference": "40-CT/TW", "issuer": "Ban Bí thư"}],
        "obligations": [
            obligation("tuyen-truyen", QUARTERLY_TITLE, "hctd-phu-tho", ["mttq-phu-tho"], "quarterly"),
            obligation("giao-ban", MONTHLY_TITLE, "mttq-phu-tho", ["hctd-phu-tho"], "monthly"),
            obligation("so-ket", ANNUAL_TITLE, "mttq-phu-tho", ["hctd-phu-tho"], "annual"),
            obligation("tong-ket", ONCE_TITLE, "mttq-phu-tho", ["hctd-phu-tho"], "once"),
        ],
    }


def other_programme(last: int, next_year: int) -> dict[str, Any]:
    return {
        "document_number": f"03/CTPH-SNV-HCTĐ-{last}",
        "kind": "program",
        "title": OTHER_TITLE,
        "locality": "Phú Thọ",
        "signed_on": f"{last}-01-05",
        "term": {"start": f"{last}-01-01", "end": f"{next_year}-12-31"},
        "parties": [
            {
                "party_id": "snv-phu-tho",
                "name": "Sở Nội vụ tỉnh Phú Thọ",
                "role": "lead",
                "signatory": signatory("C"),
            },
            {"party_id": "hctd-phu-tho", "name": RED_CROSS, "role": "member", "signatory": signatory("D")},
        ],
        "obligations": [
            obligation("cong-tac-xa-hoi", OTHER_TITLE, "snv-phu-tho", ["hctd-phu-tho"], "annual")
        ],
    }


def obligation(oid: str, title: str, lead: str, supporters: list[str], cadence: str) -> dict[str, Any]:
    return {
        "obligation_id": oid,
        "title": title,
        "lead_party_id": lead,
        "supporting_party_ids": supporters,
        "cadence": cadence,
    }


async def signed(stack: Stack, body: dict[str, Any], party: str) -> dict[str, Any]:
    headers = stack.bearer(stack.token(party_ids=[party]))
    response = await stack.registry.post("/v1/agreements", json=body, headers=headers)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def reported(stack: Stack, agreement_id: str, party: str, obligation_id: str, period: str) -> int:
    body = {
        "obligation_id": obligation_id,
        "party_id": party,
        "period": period,
        "status": "in_progress",
        "completion_percent": 50,
        "reported_on": dt.date.today().isoformat(),
    }
    response = await stack.registry.post(
        f"/v1/agreements/{agreement_id}/progress-reports",
        json=body,
        headers=stack.bearer(stack.token(party_ids=[party])),
    )
    assert response.status_code == 201, response.text
    position: int = response.json()["position"]
    return position


async def sign_in_as(page: Page, console: str, official: str) -> None:
    await page.goto(f"{console}/dang-nhap")
    await page.check(f"#can-bo-{official}")
    await page.click("button:has-text('Đăng nhập')")
    assert page.url == f"{console}/", page.url


async def choose(page: Page, year: str, part_label: str = "Cả năm") -> None:
    """The report's form, as a person fills it in (JavaScript off: a plain GET)."""
    await page.select_option("#don_vi", "mttq-phu-tho")
    await page.fill("#nam", year)
    await page.select_option("#ky", label=part_label)
    await page.click("button:has-text('Xem báo cáo')")


async def test_the_overdue_report_of_a_front_committee(stack: Stack, console: str, chromium: Any) -> None:
    today = dt.datetime.now(VIETNAM).date()
    last, this, next_year = today.year - 1, today.year, today.year + 1
    front = await signed(stack, front_programme(last, next_year), "mttq-phu-tho")
    other = await signed(stack, other_programme(last, next_year), "snv-phu-tho")
    agreement_id = front["agreement_id"]
    # Last year: the Front reports March to October (not November and December); the Red Cross,
    # lead of the quarterly one, reports the second quarter; the Front, its supporter, the third
    # (a supporter's report is not the lead's: the third quarter stays overdue).
    for month in range(3, 11):
        await reported(stack, agreement_id, "mttq-phu-tho", "giao-ban", f"{last}-{month:02d}")
    await reported(stack, agreement_id, "hctd-phu-tho", "tuyen-truyen", f"{last}-Q2")
    position = await reported(stack, agreement_id, "mttq-phu-tho", "tuyen-truyen", f"{last}-Q3")
    await stack.wait_for_position(max(position, other["position"]))

    expected = {  # (obligation title, period): last year's periods without their lead's report
        (QUARTERLY_TITLE, f"Quý I/{last}"),  # the term began on 15 March, inside the quarter
        (QUARTERLY_TITLE, f"Quý III/{last}"),
        (QUARTERLY_TITLE, f"Quý IV/{last}"),
        (MONTHLY_TITLE, f"Tháng 11/{last}"),
        (MONTHLY_TITLE, f"Tháng 12/{last}"),
        (ANNUAL_TITLE, f"Năm {last}"),
    }

    recorder = Recorder()
    context = await chromium.new_context(
        java_script_enabled=False, locale="vi-VN", viewport={"width": 1280, "height": 900}
    )
    await recorder.attach(context)
    page = await context.new_page()
    await sign_in_as(page, console, FRONT_OFFICIAL)

    # "Việc của đơn vị": what the Front leads is overdue (last year's two months and the year,
    # this year's months gone by) and due now; the quarterly one, led by the Red Cross, is not the
    # Front's to report.
    overdue_rows = page.locator("section[aria-labelledby='qua-han'] tr.overdue")
    assert await overdue_rows.count() == 2  # the monthly and the annual one
    overdue_text = await page.inner_text("section[aria-labelledby='qua-han']")
    assert MONTHLY_TITLE in overdue_text and ANNUAL_TITLE in overdue_text
    assert QUARTERLY_TITLE not in overdue_text and ONCE_TITLE not in overdue_text
    assert f"Tháng 11/{last}, Tháng 12/{last}" in overdue_text
    assert f"Tháng 10/{last}" not in overdue_text
    due_text = await page.inner_text("section[aria-labelledby='den-han']")
    assert f"Tháng {today.month:02d}/{this}" in due_text and f"Năm {this}" in due_text
    assert ONCE_TITLE in due_text  # once: due within the term until its lead reports it
    # The overdue report link opens the form at the oldest overdue period.
    await (
        overdue_rows.filter(has_text=MONTHLY_TITLE)
        .get_by_role("link", name=f"Báo cáo: {MONTHLY_TITLE}")
        .click()
    )
    assert await page.input_value("#period") == f"{last}-11"

    # The overdue report: from the navigation, then the form (a GET with JavaScript off).
    await page.click("nav >> text=Quá hạn báo cáo")
    assert page.url == f"{console}/qua-han"
    assert await page.locator("#don_vi option").all_inner_texts() == [FRONT]  # only the person's bodies
    await choose(page, str(last))
    assert page.url == f"{console}/qua-han?don_vi=mttq-phu-tho&nam={last}&ky="
    heading = await page.inner_text("h1")
    assert FRONT in heading and f"Năm {last}" in heading
    assert f"Tính đến ngày {today.strftime('%d/%m/%Y')}" in await page.inner_text("main")
    rows = page.locator("table.overdue-report tbody tr")
    found = set()
    for row in await rows.all():
        cells = await row.locator("td").all_inner_texts()
        found.add((cells[2].splitlines()[0], cells[5].splitlines()[0]))
    assert found == expected
    main = await page.inner_text("main")
    assert OTHER_TITLE not in main  # the Front is no party to it
    annual = rows.filter(has_text=ANNUAL_TITLE)
    assert f"{(today - dt.date(last, 12, 31)).days} ngày" in await annual.inner_text()
    first_quarter = rows.filter(has_text=f"Quý I/{last}")
    assert RED_CROSS in await first_quarter.locator("td").nth(3).inner_text()  # lead
    assert FRONT in await first_quarter.locator("td").nth(4).inner_text()  # supporting
    assert f"Quý III/{last}: Đang thực hiện (50%)" in await first_quarter.inner_text()  # last report
    await shot(page, "overdue.png")
    report_url = page.url

    # The CSV of the same report.
    href = await page.get_attribute("a:has-text('Tải về tệp CSV')", "href")
    assert href == f"/qua-han.csv?don_vi=mttq-phu-tho&nam={last}&ky="
    download = await context.request.get(f"{console}{href}")
    assert download.status == 200
    assert download.headers["content-type"] == "text/csv; charset=utf-8"
    assert (
        download.headers["content-disposition"] == f'attachment; filename="qua-han-mttq-phu-tho-{last}.csv"'
    )
    data = await download.body()
    assert data.startswith(b"\xef\xbb\xbf")
    lines = list(csv.reader(io.StringIO(data.decode("utf-8").removeprefix("\ufeff"))))
    assert lines[0] == list(CSV_HEADER)
    by_name = [dict(zip(lines[0], line, strict=True)) for line in lines[1:]]
    assert {(line["Nhiệm vụ"], line["Kỳ báo cáo"]) for line in by_name} == {
        ("'" + title if title.startswith("-") else title, period) for title, period in expected
    }
    assert [line["STT"] for line in by_name] == [str(n) for n in range(1, 7)]
    assert all(re.fullmatch(r"[0-3][0-9]/[01][0-9]/[0-9]{4}", line["Ngày hết kỳ"]) for line in by_name)
    assert {line["Ngày hết kỳ"] for line in by_name if line["Kỳ báo cáo"] == f"Năm {last}"} == {
        f"31/12/{last}"
    }

    # Printed: an A4 PDF, and the print stylesheet (navigation, forms and buttons hidden, the title
    # with the body, the period and the date, headers repeated, rows never cut).
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    pdf = await page.pdf(format="A4", prefer_css_page_size=True, print_background=True)
    (SCREENSHOTS / "overdue.pdf").write_bytes(pdf)
    assert pdf.startswith(b"%PDF-")
    pages = re.findall(rb"/Type\s*/Page\b(?!s)", pdf)
    assert len(pages) >= 1
    boxes = {
        (round(float(w)), round(float(h)))
        for w, h in re.findall(rb"/MediaBox\s*\[\s*0\s+0\s+([0-9.]+)\s+([0-9.]+)\s*\]", pdf)
    }
    assert boxes == {A4_POINTS}, boxes
    await page.emulate_media(media="print")
    await page.set_viewport_size({"width": 794, "height": 1123})  # A4 at 96 dpi
    for hidden in ("header.site", "nav", "form.filters", "footer.site", "a:has-text('Tải về tệp CSV')"):
        assert not await page.locator(hidden).first.is_visible(), hidden
    assert await page.locator(".print-only").is_visible()
    assert today.strftime("%d/%m/%Y") in await page.inner_text(".print-only")
    assert FRONT in await page.inner_text("h1")
    styles = await page.eval_on_selector(
        "table.overdue-report",
        "(t) => [getComputedStyle(t.tHead).display, getComputedStyle(t.tBodies[0].rows[0]).breakInside]",
    )
    assert styles == ["table-header-group", "avoid"]
    await shot(page, "overdue-print.png")
    await page.emulate_media(media="screen")
    await page.set_viewport_size({"width": 1280, "height": 900})

    # Empty: the year before the term has periods, all ended, none owed.
    await choose(page, str(last - 1))
    assert await page.locator("table.overdue-report").count() == 0
    assert f"Không có nhiệm vụ nào quá hạn báo cáo trong năm {last - 1}" in await page.inner_text("main")
    empty_url = page.url
    # A span that has not ended yet: nothing can be overdue in it.
    await choose(page, str(next_year), "Quý IV")
    assert f"Chưa có kỳ báo cáo nào trong quý IV/{next_year} kết thúc" in await page.inner_text("main")

    # Bad input: refused beside its field, in Vietnamese; no report, no CSV.
    await choose(page, "20x5")
    assert "Năm phải là số có 4 chữ số" in await page.inner_text("#loi-nam")
    assert await page.get_attribute("#nam", "aria-invalid") == "true"
    assert await page.input_value("#nam") == "20x5"
    assert await page.locator("table.overdue-report").count() == 0
    error_url = page.url
    assert (await context.request.get(error_url)).status == 422
    for path in ("/qua-han", "/qua-han.csv"):  # a body the person does not act for, forced
        forced = await context.request.get(f"{console}{path}?don_vi=hctd-phu-tho&nam={last}&ky=")
        assert forced.status == 403
        assert "không xem được báo cáo của đơn vị này" in await forced.text()
        assert "text/html" in forced.headers["content-type"]
    part = await context.request.get(f"{console}/qua-han.csv?don_vi=mttq-phu-tho&nam={last}&ky=Q5")
    assert part.status == 422 and "Vui lòng chọn kỳ" in await part.text()

    await context.close()
    assert recorder.requested, "the recorder saw nothing"
    assert recorder.outside == []
    assert all(stays_on_this_machine(url) for url in recorder.requested)
    assert any(url.startswith(f"{console}/qua-han?") for url in recorder.requested)

    await the_report_passes_axe(chromium, console, report_url, empty_url, error_url)


async def the_report_passes_axe(chromium: Any, console: str, *urls: str) -> None:
    """axe-core needs script in the page: a context with JavaScript on, the pages unchanged."""
    context, recorder = await recorded_context(chromium)
    page = await context.new_page()
    await sign_in_as(page, console, FRONT_OFFICIAL)
    axe = Axe()
    results: dict[str, list[str]] = {}
    for name, url in zip(("with-rows", "empty", "error"), urls, strict=True):
        await page.goto(url)
        found = await axe.run(page, options=WCAG_22_AA)
        results[name] = [
            f"{v['id']}: {[n['target'] for n in v['nodes']]}" for v in found.response["violations"]
        ]
    assert await page.locator("#loi-nam").count() == 1  # the error state was the one checked last
    await page.goto(f"{console}/")
    found = await axe.run(page, options=WCAG_22_AA)
    results["my-work"] = [
        f"{v['id']}: {[n['target'] for n in v['nodes']]}" for v in found.response["violations"]
    ]
    await context.close()
    assert results == {name: [] for name in results}, results
    assert len(results) == 4
    assert recorder.outside == []
