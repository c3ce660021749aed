"""What every page of the console shares: the templates, the session cookie, the CSRF check of a
posted form, the signed-in person and the token the console sends for them, and the security
headers. One `Console` per application, kept in `app.state.console`; pages reach it through the
`ConsoleOf` dependency.

The token: with OpenID Connect, the person's own access token from the session, renewed with
their refresh token when it is about to expire (the renewed session is written back on the
response, `RENEWED`); with the development sign-in, one minted per request."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

import structlog
from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from services.console import sessions, vietnamese
from services.console.backend import Backend, DevelopmentMinter
from services.console.oidc import OpenIdConnect, needs_renewal
from services.console.sessions import Person, Session
from services.console.settings import ConsoleSettings

log = structlog.get_logger(__name__)

HERE = Path(__file__).parent
MAX_FORM_BYTES = 64 * 1024


def content_security_policy(provider: str = "") -> str:
    """No script at all, everything else from the console itself. A form may post to the
    console and, with OpenID Connect, lead on to the identity provider's origin: signing out
    (a form) is answered with a redirect to its end-session page, which `form-action` governs too."""
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'none'",
            "style-src 'self'",
            "img-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            f"form-action 'self' {provider}".strip(),
            "frame-ancestors 'none'",
        )
    )


def security_headers(settings: ConsoleSettings) -> dict[str, str]:
    provider = ""
    if settings.oidc_issuer:
        issuer = urlsplit(settings.oidc_issuer)
        provider = f"{issuer.scheme}://{issuer.netloc}"
    return {
        "Content-Security-Policy": content_security_policy(provider),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
    }


# request.state's name for a session whose tokens were renewed while answering (app.py writes it).
RENEWED = "renewed_session"
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


class Visit(NamedTuple):
    """A signed-in request: the session, the person, and the bearer token the registry and the
    projections get for them (the person's own, or in development one minted for them)."""

    session: Session
    person: Person
    token: str


class Console:
    def __init__(self, settings: ConsoleSettings) -> None:
        self.settings = settings
        self.security_headers = security_headers(settings)
        self.minter = DevelopmentMinter(settings) if settings.development_sign_in else None
        self._secret = settings.session_secret.get_secret_value()
        self.templates = templates()
        self.templates.env.globals["development_sign_in"] = settings.development_sign_in
        self.backend: Backend | None = None  # opened by the application's lifespan
        # The identity provider's client, when an issuer is configured (closed by the lifespan).
        self.oidc = OpenIdConnect(settings) if settings.openid_connect else None

    def session_of(self, request: Request) -> Session | None:
        return sessions.decode(request.cookies.get(sessions.COOKIE), self._secret)

    def new_session(self) -> Session:
        return sessions.new_session(self.settings.session_max_age_seconds)

    def cookie_of(self, session: Session) -> str | None:
        """The cookie for the session, or None when it would be too large for a browser to keep."""
        cookie = sessions.encode(session, self._secret)
        if len(cookie) > sessions.MAX_COOKIE_CHARS:
            log.error("session cookie too large", chars=len(cookie), limit=sessions.MAX_COOKIE_CHARS)
            return None
        return cookie

    def keep(self, response: Response, session: Session) -> Response:
        cookie = self.cookie_of(session)
        if cookie is None:  # only tokens make it grow, and they are measured where they enter
            session = self.new_session()
            cookie = sessions.encode(session, self._secret)
        response.set_cookie(
            sessions.COOKIE,
            cookie,
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
        session: Session,
        context: Mapping[str, Any],
        status: int = 200,
    ) -> Response:
        response = self.templates.TemplateResponse(
            request, name, {"csrf": session.csrf, "official": session.person, **context}, status_code=status
        )
        return self.keep(response, session)

    def refused(
        self, request: Request, status: int, message: str, session: Session | None = None, **context: Any
    ) -> Response:
        session = session or self.session_of(request) or self.new_session()
        context = {"title": "Không thực hiện được", "message": message, **context}
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

    async def signed_in(self, request: Request) -> Visit | None:
        """The session, the person signed in and the token good for this request; None:
        nobody is, or their session at the identity provider has ended (sign in again).
        Raises ProviderUnavailable when the token must be renewed and the provider cannot be reached."""
        session = self.session_of(request)
        if session is None or session.person is None:
            return None
        if self.oidc is None:
            # A session signed in through a provider means nothing to a console without one.
            return Visit(session, session.person, self._token(session)) if session.tokens is None else None
        if session.tokens is None:
            return None
        if needs_renewal(session.tokens):
            renewed = await self.oidc.renewed(session.tokens, session.person)
            if renewed is None:
                return None
            session = session.with_tokens(*renewed)
            if self.cookie_of(session) is None:
                return None
            setattr(request.state, RENEWED, session)
        assert session.person is not None
        return Visit(session, session.person, self._token(session))

    def _token(self, session: Session) -> str:
        """The bearer token the registry and projections get for the signed-in person."""
        if session.tokens is not None:
            return session.tokens.access_token
        if self.minter is None or session.person is None:
            raise RuntimeError("a session without tokens outside the development sign-in")
        return self.minter.mint(session.person.subject, session.person.party_ids)

    def base_url(self, request: Request) -> str:
        """The console's own address for the provider's redirects (CONSOLE_PUBLIC_URL, or the request's)."""
        return (self.settings.public_url or str(request.base_url)).rstrip("/")

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
