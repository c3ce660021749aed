"""What every page of the console shares: the templates, the session cookie, the CSRF check of a
posted form, the signed-in person and the token the console sends for them, and the security
headers. One `Console` per application, kept in `app.state.console`; pages reach it through the
`ConsoleOf` dependency."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from services.console import sessions, vietnamese
from services.console.backend import Backend, DevelopmentMinter
from services.console.officials import BY_ID, Official
from services.console.settings import ConsoleSettings

HERE = Path(__file__).parent
MAX_FORM_BYTES = 64 * 1024
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'none'",
        "style-src 'self'",
        "img-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
CSRF_REFUSED = (
    "Yêu cầu bị từ chối: phiên làm việc không hợp lệ hoặc đã hết hạn. Vui lòng tải lại trang và thử lại."
)


def today() -> dt.date:
    return dt.datetime.now(vietnamese.VIETNAM).date()


def templates() -> Jinja2Templates:
    found = Jinja2Templates(directory=HERE / "templates")
    env = found.env
    env.filters["ngay"] = vietnamese.date
    env.filters["thoi_diem"] = vietnamese.timestamp
    env.filters["ky"] = vietnamese.period
    env.filters["ky_trong_cau"] = vietnamese.period_in_sentence
    env.globals.update(
        KINDS=vietnamese.KINDS,
        ROLES=vietnamese.ROLES,
        CADENCES=vietnamese.CADENCES,
        REPORT_STATUSES=vietnamese.REPORT_STATUSES,
        OBLIGATION_STATUSES=vietnamese.OBLIGATION_STATUSES,
        AGREEMENT_STATUSES=vietnamese.AGREEMENT_STATUSES,
        EVENT_TYPES=vietnamese.EVENT_TYPES,
        OUTCOMES=vietnamese.OUTCOMES,
        CHANGES=vietnamese.CHANGES,
        DOCUMENT_TYPES=vietnamese.DOCUMENT_TYPES,
        PARTY_KINDS=vietnamese.PARTY_KINDS,
        PARTY_STATUSES=vietnamese.PARTY_STATUSES,
        label=vietnamese.label,
    )
    return found


class Console:
    def __init__(self, settings: ConsoleSettings) -> None:
        self.settings = settings
        self.minter = DevelopmentMinter(settings) if settings.development_sign_in else None
        self._secret = settings.session_secret.get_secret_value()
        self.templates = templates()
        self.templates.env.globals["development_sign_in"] = settings.development_sign_in
        self.backend: Backend | None = None  # opened by the application's lifespan

    def session_of(self, request: Request) -> sessions.Session | None:
        return sessions.decode(request.cookies.get(sessions.COOKIE), self._secret)

    def new_session(self) -> sessions.Session:
        return sessions.new_session(self.settings.session_max_age_seconds)

    def keep(self, response: Response, session: sessions.Session) -> Response:
        response.set_cookie(
            sessions.COOKIE,
            sessions.encode(session, self._secret),
            max_age=self.settings.session_max_age_seconds,
            httponly=True,
            secure=self.settings.secure_cookies,
            samesite="lax",
            path="/",
        )
        return response

    def page(
        self,
        request: Request,
        name: str,
        session: sessions.Session,
        context: Mapping[str, Any],
        status: int = 200,
    ) -> Response:
        official = BY_ID.get(session.official or "")
        response = self.templates.TemplateResponse(
            request, name, {"csrf": session.csrf, "official": official, **context}, status_code=status
        )
        return self.keep(response, session)

    def refused(self, request: Request, status: int, message: str) -> Response:
        session = self.session_of(request) or self.new_session()
        context = {"title": "Không thực hiện được", "message": message}
        return self.page(request, "error.html", session, context, status)

    @staticmethod
    async def form_of(request: Request) -> dict[str, str]:
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            return {}
        fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        return {name: values[0] for name, values in fields.items()}

    async def checked_form(self, request: Request) -> dict[str, str] | Response:
        """The posted form, once its CSRF token matches the session's; else the 403 to answer."""
        form = await self.form_of(request)
        if not sessions.csrf_matches(self.session_of(request), form.get("csrf")):
            return self.refused(request, 403, CSRF_REFUSED)
        return form

    def signed_in(self, request: Request) -> tuple[sessions.Session, Official] | None:
        session = self.session_of(request)
        if session is None or session.official is None:
            return None
        official = BY_ID.get(session.official)
        return None if official is None else (session, official)

    def token_for(self, official: Official) -> str:
        if self.minter is None:  # production: the person's own token from the identity provider
            raise RuntimeError("no way to obtain a token in production yet")
        return self.minter.mint(official.official_id, official.party_ids)

    @property
    def services(self) -> Backend:
        assert self.backend is not None, "the console's lifespan opens the backend"
        return self.backend

    @staticmethod
    def to_sign_in() -> Response:
        return RedirectResponse("/dang-nhap", status_code=303)


def _console(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


ConsoleOf = Annotated[Console, Depends(_console)]
