"""The docs pages work on a closed network: headless Chromium opens `/docs` and `/redoc` of both
services (real uvicorn servers) and finds every operation of the service's OpenAPI document on
the page, while no request leaves 127.0.0.1.

The browser is Debian's `chromium` (`make test` installs it), driven by Playwright for Python.
Every request the pages make is recorded, and every one for another host is aborted, so that
a page that would reach the internet is seen to here (and not only on a machine without it):
the control test shows that FastAPI's own page, which loads Swagger UI from a CDN, is caught.
A load that the page's Content-Security-Policy stops is reported by Playwright as a request
that failed with "csp" (the page also reports the violation): the browser never sent it, so it
does not count as leaving, but each is listed and checked. Screenshots of the pages are left in
`.local/docs-offline/`.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from coordreg_contracts import examples
from fastapi.openapi.docs import get_swagger_ui_html
from playwright.async_api import BrowserContext, Page, Request, Route, async_playwright

from services.common.docs_pages import ASSETS_PATH, CONTENT_SECURITY_POLICY
from tests.support.stack import Stack

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).parents[2] / ".local" / "docs-offline"
RENDER_TIMEOUT_MS = 60_000
# Each CSP violation the page reports (a load the policy stopped before it was made).
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => window.__violations.push(e.blockedURI));
"""
SWAGGER_OPERATIONS = """
() => Array.from(document.querySelectorAll(".opblock")).map((block) => ({
  id: block.id,
  method: block.querySelector(".opblock-summary-method")?.textContent ?? "",
  path: block.querySelector(".opblock-summary-path")?.getAttribute("data-path") ?? "",
}))
"""
REDOC_OPERATIONS = """
() => Array.from(document.querySelectorAll("[data-section-id*='operation/']"))
  .map((section) => section.getAttribute("data-section-id"))
"""


def stays_on_this_machine(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in {"data", "blob", "about"}:
        return True
    return parts.scheme in {"http", "https", "ws", "wss"} and parts.hostname == "127.0.0.1"


@dataclass
class Visit:
    """What a page asked for: every URL, those that went for another host (the route aborted
    them), the loads its CSP stopped before they were sent (as the page reported them, and as
    Playwright did), and the script errors it threw."""

    requested: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)
    blocked_by_policy: list[str] = field(default_factory=list)
    failed_by_policy: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@pytest.fixture
async def browser() -> AsyncIterator[BrowserContext]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium (see the README)")
    with tempfile.TemporaryDirectory(prefix="docs-offline-profile-") as profile:  # new and empty
        async with async_playwright() as playwright:
            context = await playwright.chromium.launch_persistent_context(
                profile,
                executable_path=CHROMIUM,
                headless=True,
                args=CHROMIUM_ARGS,
                viewport={"width": 1280, "height": 900},
            )
            try:
                yield context
            finally:
                await context.close()


async def visit(context: BrowserContext, url: str) -> tuple[Page, Visit]:
    seen = Visit()

    def record(request: Request) -> None:
        seen.requested.append(request.url)

    def record_failure(request: Request) -> None:
        if request.failure == "csp":
            seen.failed_by_policy.append(request.url)

    async def only_this_machine(route: Route) -> None:
        if stays_on_this_machine(route.request.url):
            await route.fallback()  # to a route registered before this one, else the network
        else:
            seen.outside.append(route.request.url)
            await route.abort()

    context.on("request", record)
    context.on("requestfailed", record_failure)
    await context.route("**/*", only_this_machine)
    page = await context.new_page()
    page.on("pageerror", lambda error: seen.errors.append(str(error)))
    await page.add_init_script(RECORD_VIOLATIONS)
    await page.goto(url, wait_until="load")
    return page, seen


async def finish(context: BrowserContext, page: Page, seen: Visit, screenshot: str) -> None:
    await page.wait_for_load_state("networkidle")
    seen.blocked_by_policy = list(await page.evaluate("window.__violations"))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=SCREENSHOTS / screenshot, full_page=False)
    await page.close()
    # What the route aborted, and any request for another host it did not see, but for the loads
    # the policy stopped in the page (never sent).
    tried = {*seen.outside, *(url for url in seen.requested if not stays_on_this_machine(url))}
    seen.outside = sorted(tried - set(seen.failed_by_policy))
    assert sorted(set(seen.failed_by_policy)) == sorted(set(seen.blocked_by_policy)), seen


async def wait_until(page: Page, expression: str, arg: Any = None) -> None:
    """Polls `expression` from the test until it is true. Not `page.wait_for_function`: its
    polling compiles the predicate in the page, which the pages' policy (no 'unsafe-eval') refuses
    whenever the page is not ready at the first look."""
    deadline = time.monotonic() + RENDER_TIMEOUT_MS / 1000
    while not await page.evaluate(expression, arg):
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {RENDER_TIMEOUT_MS} ms: {expression}")
        await asyncio.sleep(0.1)


async def shows_the_example(page: Page, block_id: str, example: dict[str, Any]) -> None:
    """Opens an operation: its request body's example (from the demo data) shows, in Vietnamese."""
    block = page.locator(f"#{block_id}")
    await block.locator(".opblock-summary").first.click()
    await wait_until(
        page,
        "([id, texts]) => texts.every((text) => document.getElementById(id)?.innerText.includes(text))",
        [block_id, [example["document_number"], example["title"]]],
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await block.screenshot(path=SCREENSHOTS / f"{block_id}.png")


def operations(document: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    """operationId: (METHOD, path, first tag), for every operation of an OpenAPI document."""
    return {
        operation["operationId"]: (method.upper(), path, operation.get("tags", ["default"])[0])
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }


async def openapi_document(base: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base, timeout=30) as anonymous:
        response = await anonymous.get("/openapi.json")
        response.raise_for_status()
        document: dict[str, Any] = response.json()
        return document


@pytest.mark.parametrize("service", ["registry", "projections"])
async def test_swagger_ui_lists_every_operation_with_no_request_off_the_machine(
    stack: Stack, browser: BrowserContext, service: str
) -> None:
    base = stack.registry_url if service == "registry" else stack.projections_url
    expected = operations(await openapi_document(base))
    assert expected, "the document has no operations"

    page, seen = await visit(browser, f"{base}/docs")
    await wait_until(page, f"document.querySelectorAll('.opblock').length >= {len(expected)}")
    listed = await page.evaluate(SWAGGER_OPERATIONS)
    if service == "registry":
        await shows_the_example(page, "operations-agreements-signAgreement", examples.SIGN_AGREEMENT)
    await finish(browser, page, seen, f"{service}-docs.png")

    # Swagger UI names each operation's block after its tag (spaces as "_") and operationId.
    assert sorted(block["id"] for block in listed) == sorted(
        f"operations-{tag.replace(' ', '_')}-{operation_id}" for operation_id, (_, _, tag) in expected.items()
    )
    assert sorted((block["method"].upper(), block["path"]) for block in listed) == sorted(
        (method, path) for method, path, _ in expected.values()
    )
    assert seen.outside == []
    assert seen.blocked_by_policy == []
    assert seen.errors == []
    # It ran on the service's own assets, and the document it showed is the service's.
    assert f"{base}{ASSETS_PATH}/swagger-ui-bundle.js" in seen.requested
    assert f"{base}{ASSETS_PATH}/swagger-ui.css" in seen.requested
    assert f"{base}{ASSETS_PATH}/favicon.png" in seen.requested
    assert f"{base}/openapi.json" in seen.requested


@pytest.mark.parametrize("service", ["registry", "projections"])
async def test_redoc_lists_every_operation_with_no_request_off_the_machine(
    stack: Stack, browser: BrowserContext, service: str
) -> None:
    base = stack.registry_url if service == "registry" else stack.projections_url
    expected = operations(await openapi_document(base))

    page, seen = await visit(browser, f"{base}/redoc")
    await wait_until(
        page, f"document.querySelectorAll(\"[data-section-id*='operation/']\").length >= {len(expected)}"
    )
    sections = await page.evaluate(REDOC_OPERATIONS)
    await finish(browser, page, seen, f"{service}-redoc.png")

    # ReDoc's section of an operation is "tag/<tag>/operation/<operationId>".
    assert sorted({section.rsplit("operation/", 1)[1] for section in sections}) == sorted(expected)
    assert seen.outside == []
    assert seen.errors == []
    # The one load the policy stops: ReDoc's "API docs by Redocly" badge names its logo on
    # Redocly's CDN (services/common/docs_pages.py); the browser never asks for it.
    assert {urlsplit(url).hostname for url in seen.blocked_by_policy} <= {"cdn.redoc.ly"}
    assert f"{base}{ASSETS_PATH}/redoc.standalone.js" in seen.requested
    assert f"{base}/openapi.json" in seen.requested


async def test_a_page_that_loads_from_a_cdn_is_caught(stack: Stack, browser: BrowserContext) -> None:
    """The control: FastAPI's own /docs page (Swagger UI from a CDN), served in place of a page on
    127.0.0.1, is seen asking another host, and without its assets it lists nothing."""
    cdn_page = bytes(get_swagger_ui_html(openapi_url="/openapi.json", title="FastAPI's default page").body)
    url = f"{stack.registry_url}/docs-from-a-cdn"

    async def serve_cdn_page(route: Route) -> None:
        await route.fulfill(status=200, content_type="text/html", body=cdn_page)

    await browser.route(url, serve_cdn_page)  # answered before the recorder's route
    page, seen = await visit(browser, url)
    await finish(browser, page, seen, "fastapi-default-docs.png")
    assert any(urlsplit(found).hostname == "cdn.jsdelivr.net" for found in seen.outside), seen
    assert not any(ASSETS_PATH in found for found in seen.requested)


def test_the_policy_allows_only_this_service() -> None:
    """Every source the docs pages' policy allows is the service itself or what the page makes."""
    sources = {token for directive in CONTENT_SECURITY_POLICY.split(";") for token in directive.split()[1:]}
    assert sources <= {"'self'", "'unsafe-inline'", "'none'", "data:", "blob:"}, sources
