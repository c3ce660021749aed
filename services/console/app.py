"""The console's web application: server-rendered pages (Jinja2), no JavaScript, forms that work
with JavaScript switched off, sessions in an encrypted cookie, a CSRF token in every form.

Pages (Vietnamese paths), one module each in `services/console/pages/`:
- `sign_in`: `GET /dang-nhap`, to the identity provider (OpenID Connect) and back at
  `GET /dang-nhap/xac-nhan`, or the development sign-in (`GET|POST /dang-nhap`, development only);
  `POST /dang-xuat`, then `GET /da-dang-xuat`;
- `my_work`: `GET /`, "Việc của đơn vị";
- `report`: `GET|POST /bao-cao/{agreement_id}/{obligation_id}`, the progress report form;
- `agreement`: `GET /thoa-thuan/{agreement_id}`, an agreement and the timeline of its events;
- `overdue`: `GET /qua-han`, the overdue report of one of the person's bodies for a year, half,
  quarter or month (printable on A4), and `GET /qua-han.csv`, the same report as a CSV file.
- `search`: `GET /tim-kiem`, search across agreements (diacritics ignored), filtered by province
  as now, document type and status;
- `body`: `GET /don-vi/{party_id}`, a body's directory entry, its predecessors and successors, its
  current obligations and its history.
- `proof`: `GET /thoa-thuan/{agreement_id}/chung-minh`, the proof of record of its events, checked
  against the transparency log's pinned key; `GET /diem-kiem-tra/{tree_size}`, a checkpoint's note.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.console import sessions
from services.console.backend import Backend
from services.console.oidc import ProviderUnavailable
from services.console.pages import agreement, body, my_work, overdue, proof, report, search, sign_in
from services.console.settings import ConsoleSettings
from services.console.web import HERE, RENEWED, Console

log = structlog.get_logger(__name__)
PROVIDER_UNAVAILABLE = (
    "Không kết nối được với hệ thống xác thực (đăng nhập) của tỉnh. Vui lòng thử lại sau ít phút."
)
NO_SUCH_PAGE = "Không có trang này. Vui lòng kiểm tra lại địa chỉ, hoặc quay về trang chủ."
NOT_THIS_WAY = "Trang này không nhận yêu cầu theo cách này."
FAILED = "Không thực hiện được yêu cầu này."

PAGES = (sign_in, my_work, report, agreement, overdue, search, body, proof)


def create_app(settings: ConsoleSettings | None = None) -> FastAPI:
    settings = settings or ConsoleSettings()
    console = Console(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        console.backend = Backend(settings)
        try:
            yield
        finally:
            await console.backend.aclose()
            if console.oidc is not None:
                await console.oidc.aclose()

    app = FastAPI(
        title="Cổng cán bộ — Sổ đăng ký thỏa thuận phối hợp",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.console = console
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        for name, value in console.security_headers.items():
            response.headers.setdefault(name, value)
        # Tokens renewed on the way: a page keeps its session itself, a redirect does not.
        renewed = getattr(request.state, RENEWED, None)
        cookies = response.headers.getlist("set-cookie")
        if renewed is not None and not any(c.startswith(f"{sessions.COOKIE}=") for c in cookies):
            console.keep(response, renewed)
        return response

    @app.exception_handler(ProviderUnavailable)
    async def provider_unavailable(request: Request, exc: ProviderUnavailable) -> Response:
        log.warning("identity provider unavailable", error=str(exc))
        return console.refused(request, 503, PROVIDER_UNAVAILABLE)

    @app.exception_handler(StarletteHTTPException)
    async def no_such_page(request: Request, exc: StarletteHTTPException) -> Response:
        """An address no page answers (404) or a method it does not take (405): a Vietnamese
        page, as every other refusal, not the framework's English JSON."""
        message = (
            NO_SUCH_PAGE if exc.status_code == 404 else NOT_THIS_WAY if exc.status_code == 405 else FAILED
        )
        response = console.refused(request, exc.status_code, message)
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> Response:
        """Up (for `make run` and probes): the console itself answers; it holds no connections."""
        return Response("ok", media_type="text/plain")

    for page in PAGES:
        app.include_router(page.router)
    return app


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    from services.common.cli import parse_no_arguments

    parse_no_arguments(
        argv,
        ConsoleSettings,
        "Serves the officials' console: Vietnamese web pages that read the projections and send "
        "commands to the registry over their HTTP APIs.",
    )
    settings = ConsoleSettings()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, proxy_headers=False)
