"""`GET|POST /dang-nhap`: the development sign-in as a demo official (404 in production);
`POST /dang-xuat`: sign out."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.console.officials import BY_ID, DEMO_OFFICIALS
from services.console.web import ConsoleOf

router = APIRouter()
NOT_FOUND = "Trang không tồn tại."


@router.get("/dang-nhap", response_class=HTMLResponse)
async def sign_in_page(request: Request, console: ConsoleOf) -> Response:
    if not console.settings.development_sign_in:
        return console.refused(request, 404, NOT_FOUND)
    session = console.session_of(request) or console.new_session()
    context = {"officials": DEMO_OFFICIALS, "title": "Đăng nhập"}
    return console.page(request, "sign_in.html", session, context)


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
    fresh = session.signed_in_as(official.official_id, console.settings.session_max_age_seconds)
    return console.keep(RedirectResponse("/", status_code=303), fresh)


@router.post("/dang-xuat")
async def sign_out(request: Request, console: ConsoleOf) -> Response:
    form = await console.checked_form(request)
    if isinstance(form, Response):
        return form
    return console.keep(RedirectResponse("/dang-nhap", status_code=303), console.new_session())
