"""Each page of the console, measured in chromium on the real stack: the time to first byte of
the page (Navigation Timing: `responseStart - requestStart`, so it includes the console's own
calls to the registry and the projections) and its weight (the bytes transferred for the page and
everything it loads). Nothing here asserts a time (performance is measured, never asserted by a
test); the weight has a budget, since it follows from what the page is made of.

The figures go to `.local/console-figures/latest.md` and `latest.json`, and are printed.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
from pathlib import Path
from typing import Any

from playwright.async_api import Page

from services.console.vietnamese import VIETNAM
from tests.e2e.test_console import OFFICIAL, Recorder, sign_in, signed_for_today
from tests.support.stack import Stack

FIGURES = Path(__file__).parents[2] / ".local" / "console-figures"
# Loads of each page: the median is reported, the first load (cold connections) is not counted.
LOADS = 5
# A page of this console is HTML and one stylesheet: far under this, or something crept in.
WEIGHT_BUDGET_BYTES = 60_000


async def measure(page: Page, url: str) -> dict[str, Any]:
    ttfbs: list[float] = []
    weights: list[int] = []
    for _ in range(LOADS + 1):
        await page.goto(url, wait_until="load")
        timing: dict[str, Any] = await page.evaluate(
            """() => {
                const [nav] = performance.getEntriesByType('navigation');
                const resources = performance.getEntriesByType('resource');
                return {
                    ttfb: nav.responseStart - nav.requestStart,
                    status: nav.responseStatus,
                    html: nav.encodedBodySize,
                    bytes: nav.transferSize + resources.reduce((n, r) => n + r.transferSize, 0),
                    decoded: nav.decodedBodySize + resources.reduce((n, r) => n + r.decodedBodySize, 0),
                    requests: 1 + resources.length,
                };
            }"""
        )
        assert timing["status"] == 200, (url, timing)
        ttfbs.append(float(timing["ttfb"]))
        weights.append(int(timing["decoded"]))
    return {
        "ttfb_ms_median": round(statistics.median(ttfbs[1:]), 1),
        "ttfb_ms_max": round(max(ttfbs[1:]), 1),
        "html_bytes": timing["html"],
        "weight_bytes": weights[-1],
        "requests": timing["requests"],
    }


async def test_each_page_time_to_first_byte_and_weight(stack: Stack, console: str, chromium: Any) -> None:
    today = dt.datetime.now(VIETNAM).date()
    agreement_id = await signed_for_today(stack, today)

    recorder = Recorder()
    # Caching off: every load fetches its stylesheet too, so the weight is a first visit's.
    context = await chromium.new_context(locale="vi-VN", viewport={"width": 1280, "height": 900})
    await recorder.attach(context)
    page = await context.new_page()
    cdp = await context.new_cdp_session(page)
    await cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
    pages = {"Đăng nhập (/dang-nhap)": f"{console}/dang-nhap"}
    figures = {"Đăng nhập (/dang-nhap)": await measure(page, pages["Đăng nhập (/dang-nhap)"])}
    await sign_in(page, console)
    pages |= {
        "Việc của đơn vị (/)": f"{console}/",
        "Báo cáo tiến độ (/bao-cao/…)": f"{console}/bao-cao/{agreement_id}/chuyen-doi-so",
        "Thỏa thuận (/thoa-thuan/…)": f"{console}/thoa-thuan/{agreement_id}",
        "Chứng minh ghi nhận (/thoa-thuan/…/chung-minh)": f"{console}/thoa-thuan/{agreement_id}/chung-minh",
        "Tìm kiếm (/tim-kiem)": f"{console}/tim-kiem?q=chuyen+doi+so",
        "Đơn vị (/don-vi/…)": f"{console}/don-vi/snv-phu-tho",
        "Quá hạn báo cáo (/qua-han)": f"{console}/qua-han",
    }
    for name, url in pages.items():
        if name not in figures:
            figures[name] = await measure(page, url)
    await context.close()
    assert recorder.outside == []

    lines = [
        f"Console pages, chromium on 127.0.0.1, {LOADS} loads each after a first, cache off"
        f" (signed in as {OFFICIAL}).",
        "",
        "| page | TTFB median (ms) | TTFB max (ms) | HTML on the wire (bytes) | weight, decoded (bytes) | requests |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, found in figures.items():
        lines.append(
            f"| {name} | {found['ttfb_ms_median']} | {found['ttfb_ms_max']} | {found['html_bytes']}"
            f" | {found['weight_bytes']} | {found['requests']} |"
        )
    table = "\n".join(lines)
    print("\n" + table)
    FIGURES.mkdir(parents=True, exist_ok=True)
    (FIGURES / "latest.md").write_text(table + "\n", encoding="utf-8")
    (FIGURES / "latest.json").write_text(
        json.dumps(figures, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    assert set(figures) == set(pages)
    for name, found in figures.items():
        assert found["html_bytes"] > 0, name
        assert found["weight_bytes"] < WEIGHT_BUDGET_BYTES, (name, found)
