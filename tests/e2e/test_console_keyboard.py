"""The console with a keyboard only (WCAG 2.1.1 Keyboard, 2.4.7 Focus Visible, 2.4.3 Focus
Order): in Debian's chromium, a person signs in, finds an overdue obligation, reports it and sees
the report on the agreement's timeline without a single mouse event. Every step moves the focus
with Tab (and the arrow keys inside a radio group or a list box) and acts with Enter or Space; the
focused element must show a visible outline each time.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from playwright.async_api import Page

from services.console import vietnamese
from services.console.vietnamese import VIETNAM
from tests.e2e.test_console import (
    OBLIGATION_TITLE,
    OFFICIAL,
    progress_reports,
    recorded_context,
    shot,
    signed_for_today,
)
from tests.support.stack import Stack

# Enough presses to cross any of the console's pages once; a page that needs more has lost its way.
MAX_TABS = 80


async def focused(page: Page) -> dict[str, Any]:
    """What has the focus: its id, name, tag, text, and whether its outline is drawn."""
    found: dict[str, Any] = await page.evaluate(
        """() => {
            const e = document.activeElement;
            const style = getComputedStyle(e);
            return {
                id: e.id, tag: e.tagName.toLowerCase(), name: e.getAttribute('name') || '',
                text: (e.innerText || e.value || '').trim(),
                outline: style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2,
            };
        }"""
    )
    return found


async def tab_to(page: Page, wanted: str) -> dict[str, Any]:
    """Press Tab until the element matching the CSS selector `wanted` has the focus."""
    for _ in range(MAX_TABS):
        await page.keyboard.press("Tab")
        if await page.evaluate("(s) => document.activeElement.matches(s)", wanted):
            now = await focused(page)
            assert now["outline"], f"no visible focus on {now}"
            return now
    raise AssertionError(f"{MAX_TABS} presses of Tab never reached {wanted}")


async def test_an_official_reports_an_overdue_obligation_by_keyboard_only(
    stack: Stack, console: str, chromium: Any
) -> None:
    today = dt.datetime.now(VIETNAM).date()
    last_year = str(today.year - 1)
    agreement_id = await signed_for_today(stack, today)

    context, recorder = await recorded_context(chromium)
    page = await context.new_page()
    await page.goto(f"{console}/dang-nhap")

    # The skip link is the first stop, and it leads to the main content.
    first = await tab_to(page, "a.skip")
    assert first["text"] == "Bỏ qua, đến nội dung chính"

    # Sign in: into the radio group, arrow down to the official, Tab to the button, Enter.
    await tab_to(page, "input[name=official]")
    for _ in range(10):
        if (await focused(page))["id"] == f"can-bo-{OFFICIAL}":
            break
        await page.keyboard.press("ArrowDown")
    assert (await focused(page))["id"] == f"can-bo-{OFFICIAL}"
    await tab_to(page, "button[type=submit]")
    async with page.expect_navigation():
        await page.keyboard.press("Enter")
    assert page.url == f"{console}/", page.url

    # "Việc của đơn vị": the overdue obligation's report link, reached by Tab, followed with Enter.
    link = await tab_to(page, "section[aria-labelledby='qua-han'] tr.overdue a[href^='/bao-cao/']")
    assert link["text"] == f"Báo cáo: {OBLIGATION_TITLE}"
    async with page.expect_navigation():
        await page.keyboard.press("Enter")
    assert f"/bao-cao/{agreement_id}/" in page.url

    # The form: the overdue year typed into the period, a status chosen in its list box, a percent.
    await tab_to(page, "#period")
    await page.keyboard.press("Control+A")
    await page.keyboard.type(last_year)
    await tab_to(page, "#status")
    for _ in range(len(vietnamese.REPORT_STATUSES)):
        if await page.input_value("#status") == "completed":
            break
        await page.keyboard.press("ArrowDown")
    assert await page.input_value("#status") == "completed"
    await tab_to(page, "#completion_percent")
    await page.keyboard.type("100")
    await tab_to(page, "#summary")
    await page.keyboard.type("Báo cáo bằng bàn phím")
    await tab_to(page, "form[action^='/bao-cao'] button[type=submit]")
    async with page.expect_navigation():
        await page.keyboard.press("Enter")

    # The agreement's page: the report is stored and on the timeline.
    assert f"/thoa-thuan/{agreement_id}?min_position=" in page.url
    assert "Đã ghi báo cáo" in await page.inner_text("main")
    timeline = page.locator("li.event")
    assert [await item.get_attribute("data-type") for item in await timeline.all()] == [
        "AgreementSigned",
        "ProgressReported",
    ]
    await shot(page, "keyboard-timeline.png")
    reports = await progress_reports(stack, agreement_id)
    assert len(reports) == 1
    assert reports[0]["actor"] == OFFICIAL
    assert reports[0]["data"]["period"] == last_year
    assert reports[0]["data"]["summary"] == "Báo cáo bằng bàn phím"
    await context.close()
    assert recorder.outside == []
