"""Signing in and out.

With OpenID Connect (CONSOLE_OIDC_ISSUER set; production requires it): `GET /dang-nhap` sends
the browser to the identity provider, which sends it back to `GET /dang-nhap/xac-nhan` with a
code; `POST /dang-xuat` ends the console's session and then the provider's, which sends the
browser to `GET /da-dang-xuat`.

Without it, in development only: `GET|POST /dang-nhap` is the development sign-in as a demo
official (404 otherwise), and `POST /dang-xuat` comes back to it.
"""

from __future__ import annotations

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.console.officials import BY_ID, DEMO_OFFICIALS
from services.console.oidc import CALLBACK_PATH, SIGNED_OUT_PATH, ProviderUnavailable, SignInRefused
from services.console.sessions import Person
from services.console.web import ConsoleOf

log = structlog.get_logger(__name__)
router = APIRouter()
NOT_FOUND = "Trang không tồn tại."
SIGN_IN_REFUSED = (
    "Đăng nhập không thành công: phiên đăng nhập đã hết hạn hoặc không hợp lệ, hoặc hệ thống xác thực "
    "đã từ chối. Vui lòng đăng nhập lại."
)
SESSION_TOO_LARGE = (
    "Không lưu được phiên đăng nhập: thông tin tài khoản do hệ thống xác thực cấp quá lớn. "
    "Vui lòng báo quản trị hệ thống."
)
SIGN_IN_AGAIN = {"href": "/dang-nhap", "text": "Đăng nhập lại"}


@router.get("/dang-nhap", response_class=HTMLResponse)
async def sign_in_page(request: Request, console: ConsoleOf) -> Response:
    session = console.session_of(request) or console.new_session()
    if console.oidc is not None:
        # A fresh state, nonce and PKCE verifier for this sign-in, kept in the session until
        # the browser comes back to the callback.
        url, flow = await console.oidc.start(console.base_url(request) + CALLBACK_PATH)
        return console.keep(RedirectResponse(url, status_code=303), session.signing_in(flow))
    if not console.settings.development_sign_in:
        return console.refused(request, 404, NOT_FOUND)
    context = {"officials": DEMO_OFFICIALS, "title": "Đăng nhập"}
    return console.page(request, "sign_in.html", session, context)


@router.get(CALLBACK_PATH, response_class=HTMLResponse)
async def back_from_the_provider(request: Request, console: ConsoleOf) -> Response:
    if console.oidc is None:
        return console.refused(request, 404, NOT_FOUND)
    session = console.session_of(request) or console.new_session()
    # One sign-in per flow: whatever happens now, its state is spent.
    spent = session.model_copy(update={"flow": None})
    params = {name: request.query_params[name] for name in request.query_params}
    redirect_uri = console.base_url(request) + CALLBACK_PATH
    try:
        person, tokens = await console.oidc.finish(session.flow, params, redirect_uri)
    except SignInRefused as exc:
        log.warning("sign-in refused", reason=str(exc))
        return console.refused(request, 400, SIGN_IN_REFUSED, spent, link=SIGN_IN_AGAIN)
    fresh = spent.signed_in_as(person, console.settings.session_max_age_seconds, tokens)
    if console.cookie_of(fresh) is None:
        return console.refused(request, 502, SESSION_TOO_LARGE, spent)
    log.info("signed in", subject=person.subject, party_ids=list(person.party_ids))
    return console.keep(RedirectResponse("/", status_code=303), fresh)


@router.post("/dang-nhap")
async def sign_in(request: Request, console: ConsoleOf) -> Response:
    if not console.settings.development_sign_in:
        return console.refused(request, 404, NOT_FOUND)
    form = await console.checked_form(request)
    if isinstance(form, Response):
        return form
    session = console.session_of(request)
    assert session is not None  # checked_form found its CSRF token
    official = BY_ID.get(form.get("official", ""))
    if official is None:
        context = {"officials": DEMO_OFFICIALS, "title": "Đăng nhập", "error": "Vui lòng chọn một cán bộ."}
        return console.page(request, "sign_in.html", session, context, 422)
    person = Person(subject=official.official_id, name=official.name, party_ids=official.party_ids)
    fresh = session.signed_in_as(person, console.settings.session_max_age_seconds)
    return console.keep(RedirectResponse("/", status_code=303), fresh)


@router.post("/dang-xuat")
async def sign_out(request: Request, console: ConsoleOf) -> Response:
    form = await console.checked_form(request)
    if isinstance(form, Response):
        return form
    # The console forgets the person (and their tokens) first, whatever the provider says next.
    signed_out = console.new_session()
    if console.oidc is None:
        return console.keep(RedirectResponse("/dang-nhap", status_code=303), signed_out)
    # Then the provider's own session, or the next sign-in would not ask for a password: its
    # end-session page (which may ask to confirm) sends the browser back to /da-dang-xuat.
    try:
        url = await console.oidc.sign_out_url(console.base_url(request) + SIGNED_OUT_PATH)
    except ProviderUnavailable as exc:
        log.warning("signed out of the console only: provider unavailable", error=str(exc))
        url = None
    return console.keep(RedirectResponse(url or SIGNED_OUT_PATH, status_code=303), signed_out)


@router.get(SIGNED_OUT_PATH, response_class=HTMLResponse)
async def signed_out(request: Request, console: ConsoleOf) -> Response:
    session = console.new_session()
    return console.page(request, "signed_out.html", session, {"title": "Đã đăng xuất"})
