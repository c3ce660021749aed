"""People sign in to the officials' console at a real identity provider, and the registry knows
who acted (issue 23, docs/adr/0019-console-openid-connect.md).

Everything is real: Keycloak from Maven Central with the realm of deploy/keycloak/
(tests/support/keycloak.py); registry, relay and projections on PostgreSQL and Kafka, trusting
Keycloak's issuer and its JWKS as Keycloak publishes it (its encryption key included), saved to
a file as an operator would; the console served by uvicorn as an OpenID Connect client of
Keycloak; Debian's chromium driven by Playwright.

The JWKS file also holds the development key, only so that the test itself can sign the
agreement as a system (`test-client`) in Keycloak's issuer name: every token of the person is
Keycloak's own.

A demo official signs in on Keycloak's own login page, lands on "Việc của đơn vị", reports
through the form, and the stored event's `actor` (the registry's events API) is their Keycloak
subject, the id the realm file gives them; the console never mints a token. They are not offered
a body they do not hold; forced, the console refuses it, and the registry refuses their own token
for it: nothing is written. An access token about to expire is renewed with the refresh token
before the report is sent. Signing out ends the session at the console and at Keycloak: the old refresh token renews
nothing, and the next visit asks for the password again.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import BrowserContext, Page

from deploy.local.processes import free_port
from services.common.auth import DEV_JWK
from services.console import sessions
from services.console.app import create_app
from services.console.oidc import OpenIdConnect
from services.console.settings import ConsoleSettings
from services.console.vietnamese import VIETNAM
from tests.e2e.test_console import (
    OBLIGATION_TITLE,
    WCAG_22_AA,
    progress_reports,
    recorded_context,
    shot,
    signed_for_today,
)
from tests.support.kafka import Brokers
from tests.support.keycloak import REALM_FILE, LocalKeycloak
from tests.support.stack import Stack, running_stack, serve, stop_server

SECRET = "o" * 40
USERNAME = "demo-tran-van-binh"  # acts for snv-phu-tho only (deploy/keycloak/README.md)
PASSWORD = "coordreg-demo"
NOT_HELD = "mttq-phu-tho"  # supports the obligation, but this person does not act for it
REALM = json.loads(REALM_FILE.read_text(encoding="utf-8"))
CLIENT = next(c for c in REALM["clients"] if c["clientId"] == "coordreg-console")
# The subject Keycloak gives the person: the user id the realm file sets.
SUBJECT = next(u["id"] for u in REALM["users"] if u["username"] == USERNAME)


@pytest.fixture
async def oidc_stack(
    database_url: str, kafka: Brokers, topic: str, keycloak: LocalKeycloak, tmp_path: Path
) -> AsyncIterator[Stack]:
    published = keycloak.jwks()
    assert any(key.get("use") == "enc" for key in published["keys"])  # left out by the services
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [*published["keys"], DEV_JWK]}))
    async with running_stack(database_url, kafka, topic, issuer=keycloak.issuer, jwks=str(jwks)) as stack:
        yield stack


@pytest.fixture
async def oidc_console(
    oidc_stack: Stack, keycloak: LocalKeycloak
) -> AsyncIterator[tuple[str, ConsoleSettings]]:
    port = free_port()
    settings = ConsoleSettings(
        registry_url=oidc_stack.registry_url,
        projections_url=oidc_stack.projections_url,
        session_secret=SECRET,
        oidc_issuer=keycloak.issuer,
        oidc_client_id=CLIENT["clientId"],
        oidc_client_secret=CLIENT["secret"],
        public_url=f"http://127.0.0.1:{port}",
    )
    server, task = await serve(create_app(settings), port)
    try:
        yield settings.public_url, settings
    finally:
        await stop_server(server, task)


async def session_in(context: BrowserContext) -> tuple[str, sessions.Session]:
    """The console's cookie in the browser, and the session it holds (the test knows the secret)."""
    cookie = next(c for c in await context.cookies() if c["name"] == sessions.COOKIE)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    session = sessions.decode(cookie["value"], SECRET)
    assert session is not None
    return cookie["value"], session


async def set_session(context: BrowserContext, console: str, session: sessions.Session) -> None:
    await context.add_cookies(
        [
            {
                "name": sessions.COOKIE,
                "value": sessions.encode(session, SECRET),
                "url": console,
                "httpOnly": True,
            }
        ]
    )


async def sign_in_at_keycloak(page: Page, keycloak: LocalKeycloak) -> None:
    assert page.url.startswith(f"{keycloak.issuer}/protocol/openid-connect/auth?"), page.url
    await page.fill("#username", USERNAME)
    await page.fill("#password", PASSWORD)
    await page.click("#kc-login")


async def test_a_person_signs_in_at_the_provider_and_is_the_actor_of_their_report(
    oidc_stack: Stack, oidc_console: tuple[str, ConsoleSettings], keycloak: LocalKeycloak, chromium: Any
) -> None:
    stack, (console, settings) = oidc_stack, oidc_console
    today = dt.datetime.now(VIETNAM).date()
    last_year = str(today.year - 1)
    agreement_id = await signed_for_today(stack, today)

    context, recorder = await recorded_context(chromium)
    page = await context.new_page()

    # The console sends the browser to Keycloak's own login page; no development sign-in here.
    await page.goto(f"{console}/")
    assert "Đăng nhập tài khoản cán bộ" in await page.inner_text("body")
    await shot(page, "oidc-1-keycloak.png")
    await sign_in_at_keycloak(page, keycloak)
    await page.wait_for_url(f"{console}/")
    assert await page.inner_text("h1") == "Việc của đơn vị"
    assert "Trần Văn Bình" in await page.inner_text("header")
    assert "Môi trường phát triển" not in await page.inner_text("body")
    await shot(page, "oidc-2-viec-cua-don-vi.png")

    # The session: the person as Keycloak names them, their own tokens, all in one encrypted cookie.
    cookie, session = await session_in(context)
    print(f"\nsession cookie after sign-in: {len(cookie)} characters (limit {sessions.MAX_COOKIE_CHARS})")
    assert len(cookie) <= sessions.MAX_COOKIE_CHARS
    assert session.person == sessions.Person(
        subject=SUBJECT, name="Trần Văn Bình", party_ids=("snv-phu-tho",)
    )
    assert session.tokens is not None and session.tokens.refresh_token is not None
    assert session.tokens.access_token not in cookie

    # Reporting through the form: only the body the person holds is offered.
    overdue = page.locator("section[aria-labelledby='qua-han'] tr.overdue")
    await overdue.get_by_role("link", name=f"Báo cáo: {OBLIGATION_TITLE}").click()
    report_url = page.url
    offered = await page.eval_on_selector_all("#party_id option", "(options) => options.map((o) => o.value)")
    assert offered == ["snv-phu-tho"]
    await page.fill("#period", last_year)
    await page.select_option("#status", "completed")
    await page.fill("#completion_percent", "100")
    await page.fill("#summary", "Báo cáo gửi sau khi đăng nhập qua hệ thống xác thực")
    sent: dict[str, str | float | bool] = await page.eval_on_selector_all(
        "form[action^='/bao-cao'] [name]", "(els) => Object.fromEntries(els.map((e) => [e.name, e.value]))"
    )
    # Its access token about to expire as it is sent: renewed with the refresh token first, and
    # the renewed session written back on the redirect that answers the form.
    assert session.tokens is not None
    await set_session(
        context, console, session.with_tokens(session.tokens.model_copy(update={"expires_at": 0}))
    )
    await page.click("button:has-text('Gửi báo cáo')")
    await page.wait_for_url(f"{console}/thoa-thuan/{agreement_id}?min_position=**")
    assert "Đã ghi báo cáo" in await page.inner_text("main")
    _, renewed = await session_in(context)
    assert renewed.person == session.person and renewed.csrf == session.csrf
    assert renewed.tokens is not None and renewed.tokens.access_token != session.tokens.access_token
    assert renewed.tokens.expires_at > time.time() + 120

    # The same form again (a resend, same Idempotency-Key) with the token expiring once more: the
    # answer is a redirect, not a page, and still carries the renewed session (app.py writes it).
    await set_session(
        context, console, renewed.with_tokens(renewed.tokens.model_copy(update={"expires_at": 0}))
    )
    resent = await context.request.post(report_url, form=sent, max_redirects=0)
    assert resent.status == 303
    set_cookies = [h["value"] for h in resent.headers_array if h["name"].lower() == "set-cookie"]
    assert len(set_cookies) == 1, "the redirect did not write the renewed session"
    again = sessions.decode(set_cookies[0].partition("=")[2].partition(";")[0], SECRET)
    assert again is not None and again.tokens is not None and again.tokens.expires_at > time.time() + 120
    await set_session(context, console, again)

    # The stored event's actor, read through the registry's events API, is the person's subject.
    reports = await progress_reports(stack, agreement_id)
    assert len(reports) == 1
    assert reports[0]["actor"] == SUBJECT
    assert reports[0]["data"]["party_id"] == "snv-phu-tho"

    # A body the person does not hold, forced into the form: the console refuses it...
    forced = await context.request.post(
        report_url,
        form={**sent, "party_id": NOT_HELD, "idempotency_key": str(uuid.uuid4()), "period": str(today.year)},
    )
    assert forced.status == 422
    assert "không được báo cáo thay đơn vị này" in await forced.text()
    # ...and the registry refuses the person's own token for it, sent straight to it.
    straight = await stack.registry.post(
        f"/v1/agreements/{agreement_id}/progress-reports",
        json={
            "obligation_id": "chuyen-doi-so",
            "party_id": NOT_HELD,
            "period": str(today.year),
            "status": "in_progress",
            "reported_on": today.isoformat(),
        },
        headers={
            "Authorization": f"Bearer {renewed.tokens.access_token}",
            "Idempotency-Key": str(uuid.uuid4()),
        },
    )
    assert straight.status_code == 403, straight.text
    assert len(await progress_reports(stack, agreement_id)) == 1
    await page.goto(f"{console}/")

    # Signing out: the console forgets the person, then Keycloak ends its session (it asks to confirm).
    await page.click("button:has-text('Đăng xuất')")
    await page.wait_for_url(f"{keycloak.issuer}/protocol/openid-connect/logout?**")
    await page.click("#kc-logout")
    await page.wait_for_url(f"{console}/da-dang-xuat")
    assert await page.inner_text("h1") == "Đã đăng xuất"
    await shot(page, "oidc-3-da-dang-xuat.png")
    _, left = await session_in(context)
    assert left.person is None and left.tokens is None
    # The provider's session is over: the old refresh token renews nothing...
    provider = OpenIdConnect(settings)
    try:
        assert renewed.person is not None and renewed.tokens is not None
        assert await provider.renewed(renewed.tokens, renewed.person) is None
    finally:
        await provider.aclose()
    # ...and the next visit asks for the password again.
    await page.goto(f"{console}/")
    await page.wait_for_url(f"{keycloak.issuer}/protocol/openid-connect/auth?**")
    assert await page.locator("#password").count() == 1

    # The browser went nowhere but this machine (the console, Keycloak).
    await context.close()
    assert recorder.requested and recorder.outside == []
    assert any(url.startswith(keycloak.url) for url in recorder.requested)


async def test_the_signed_out_page_and_a_refused_sign_in_pass_axe(
    oidc_console: tuple[str, ConsoleSettings], chromium: Any
) -> None:
    console, _ = oidc_console
    context = await chromium.new_context(locale="vi-VN", viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    axe = Axe()
    results: dict[str, list[str]] = {}
    for name, path in (
        ("signed-out", "/da-dang-xuat"),
        ("sign-in-refused", "/dang-nhap/xac-nhan?state=x&code=y"),
    ):
        answer = await page.goto(f"{console}{path}")
        assert answer is not None and answer.status == (200 if name == "signed-out" else 400)
        found = await axe.run(page, options=WCAG_22_AA)
        results[name] = [
            f"{v['id']}: {[n['target'] for n in v['nodes']]}" for v in found.response["violations"]
        ]
    assert "Đăng nhập không thành công" in await page.inner_text("main")
    await shot(page, "oidc-4-dang-nhap-loi.png")
    await context.close()
    assert results == {"signed-out": [], "sign-in-refused": []}, results
