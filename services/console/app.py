"""The console's web application: server-rendered pages (Jinja2), no JavaScript, forms that work
with JavaScript switched off, sessions in a signed cookie, a CSRF token in every form.

Pages (Vietnamese paths):
- `GET /dang-nhap`, `POST /dang-nhap`: the development sign-in as a demo official (404 in production);
- `POST /dang-xuat`: sign out;
- `GET /`: "Việc của đơn vị", the obligations of the person's bodies, the latest report of each,
  what is overdue, what was inherited through a succession;
- `GET|POST /bao-cao/{agreement_id}/{obligation_id}`: the progress report form;
- `GET /thoa-thuan/{agreement_id}`: an agreement and the timeline of its events.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from services.console import sessions, vietnamese
from services.console.backend import Backend, DevelopmentMinter
from services.console.officials import BY_ID, DEMO_OFFICIALS, Official
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
# What a refused report says beside each field (the registry's 422 names the field).
FIELD_MESSAGES = {
    "period": "Kỳ báo cáo không hợp lệ: kỳ phải đúng định kỳ của nhiệm vụ và nằm trong thời hạn của thỏa thuận.",
    "party_id": "Đơn vị này không được báo cáo kỳ này: đơn vị đã chấm dứt hoạt động từ trước kỳ báo cáo "
    "và đơn vị kế thừa báo cáo thay, hoặc đơn vị không chủ trì, phối hợp nhiệm vụ.",
    "obligation_id": "Nhiệm vụ đã bị rút hoặc không còn trong thỏa thuận: không nhận thêm báo cáo.",
    "reported_on": "Ngày báo cáo không hợp lệ: ngày phải có dạng ngày/tháng/năm và không trước ngày ký.",
    "completion_percent": "Tỷ lệ hoàn thành phải là số nguyên từ 0 đến 100.",
    "status": "Vui lòng chọn tình trạng thực hiện.",
    "summary": "Nội dung báo cáo quá dài hoặc không hợp lệ.",
    "evidence": "Văn bản kèm theo không hợp lệ.",
}
REPORT_FIELDS = ("party_id", "period", "status", "completion_percent", "summary", "reported_on")


def _today() -> dt.date:
    return dt.datetime.now(vietnamese.VIETNAM).date()


def create_app(settings: ConsoleSettings | None = None) -> FastAPI:
    settings = settings or ConsoleSettings()
    minter = DevelopmentMinter(settings) if settings.development_sign_in else None
    secret = settings.session_secret.get_secret_value()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.backend = Backend(settings)
        try:
            yield
        finally:
            await app.state.backend.aclose()

    app = FastAPI(
        title="Cổng cán bộ — Sổ đăng ký thỏa thuận phối hợp",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    templates = Jinja2Templates(directory=HERE / "templates")
    env = templates.env
    env.filters["ngay"] = vietnamese.date
    env.filters["thoi_diem"] = vietnamese.timestamp
    env.filters["ky"] = vietnamese.period
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
        label=vietnamese.label,
        development_sign_in=settings.development_sign_in,
    )

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    def session_of(request: Request) -> sessions.Session | None:
        return sessions.decode(request.cookies.get(sessions.COOKIE), secret)

    def keep(response: Response, session: sessions.Session) -> Response:
        response.set_cookie(
            sessions.COOKIE,
            sessions.encode(session, secret),
            max_age=settings.session_max_age_seconds,
            httponly=True,
            secure=settings.secure_cookies,
            samesite="lax",
            path="/",
        )
        return response

    def page(
        request: Request, name: str, session: sessions.Session, context: Mapping[str, Any], status: int = 200
    ) -> Response:
        official = BY_ID.get(session.official or "")
        response = templates.TemplateResponse(
            request, name, {"csrf": session.csrf, "official": official, **context}, status_code=status
        )
        return keep(response, session)

    def refused(request: Request, status: int, message: str) -> Response:
        session = session_of(request) or sessions.new_session(settings.session_max_age_seconds)
        return page(
            request, "error.html", session, {"title": "Không thực hiện được", "message": message}, status
        )

    async def form_of(request: Request) -> dict[str, str]:
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            return {}
        fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        return {name: values[0] for name, values in fields.items()}

    async def checked_form(request: Request) -> dict[str, str] | Response:
        """The posted form, once its CSRF token matches the session's; else the 403 to answer."""
        form = await form_of(request)
        if not sessions.csrf_matches(session_of(request), form.get("csrf")):
            return refused(request, 403, CSRF_REFUSED)
        return form

    def signed_in(request: Request) -> tuple[sessions.Session, Official] | None:
        session = session_of(request)
        if session is None or session.official is None:
            return None
        official = BY_ID.get(session.official)
        return None if official is None else (session, official)

    def token_for(official: Official) -> str:
        if minter is None:  # production: the person's own token from the identity provider (not built yet)
            raise RuntimeError("no way to obtain a token in production yet")
        return minter.mint(official.official_id, official.party_ids)

    def to_sign_in() -> Response:
        return RedirectResponse("/dang-nhap", status_code=303)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> Response:
        """Up (for `make run` and probes): the console itself answers; it holds no connections."""
        return Response("ok", media_type="text/plain")

    # --- sign-in ---------------------------------------------------------------------------------

    @app.get("/dang-nhap", response_class=HTMLResponse)
    async def sign_in_page(request: Request) -> Response:
        if not settings.development_sign_in:
            return refused(request, 404, "Trang không tồn tại.")
        session = session_of(request) or sessions.new_session(settings.session_max_age_seconds)
        return page(request, "sign_in.html", session, {"officials": DEMO_OFFICIALS, "title": "Đăng nhập"})

    @app.post("/dang-nhap")
    async def sign_in(request: Request) -> Response:
        if not settings.development_sign_in:
            return refused(request, 404, "Trang không tồn tại.")
        form = await checked_form(request)
        if isinstance(form, Response):
            return form
        session = session_of(request)
        assert session is not None
        official = BY_ID.get(form.get("official", ""))
        if official is None:
            context = {
                "officials": DEMO_OFFICIALS,
                "title": "Đăng nhập",
                "error": "Vui lòng chọn một cán bộ.",
            }
            return page(request, "sign_in.html", session, context, 422)
        fresh = session.signed_in_as(official.official_id, settings.session_max_age_seconds)
        return keep(RedirectResponse("/", status_code=303), fresh)

    @app.post("/dang-xuat")
    async def sign_out(request: Request) -> Response:
        form = await checked_form(request)
        if isinstance(form, Response):
            return form
        return keep(
            RedirectResponse("/dang-nhap", status_code=303),
            sessions.new_session(settings.session_max_age_seconds),
        )

    # --- my body's work ---------------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse)
    async def my_work(request: Request) -> Response:
        found = signed_in(request)
        if found is None:
            return to_sign_in()
        session, official = found
        backend: Backend = request.app.state.backend
        token = token_for(official)
        today = _today()
        bodies = []
        for party_id in official.party_ids:
            answer = await backend.read(backend.projections, token, f"/v1/parties/{party_id}/obligations")
            entry = await backend.read(backend.projections, token, f"/v1/parties/{party_id}")
            obligations = answer.body.get("obligations", []) if answer.status == 200 else []
            for item in obligations:
                item["current_period"] = vietnamese.current_period(item["cadence"], today)
            bodies.append(
                {
                    "party_id": party_id,
                    "name": entry.body.get("name") if entry.status == 200 else None,
                    "obligations": obligations,
                    "succeeded_by": answer.body.get("succeeded_by") if answer.status == 200 else None,
                    "unavailable": answer.status != 200,
                }
            )
        # Overdue: the last whole year's reports that the lead party has not made, for these bodies.
        last_year = str(today.year - 1)
        overdue_answer = await backend.read(
            backend.projections, token, "/v1/reports/overdue", {"period": last_year}
        )
        overdue = [
            item
            for item in (overdue_answer.body.get("obligations", []) if overdue_answer.status == 200 else [])
            if item["lead_party_id"] in official.party_ids
        ]
        context = {
            "title": "Việc của đơn vị",
            "bodies": bodies,
            "overdue": overdue,
            "overdue_period": last_year,
            "today": today.isoformat(),
        }
        return page(request, "my_work.html", session, context)

    # --- the report form --------------------------------------------------------------------------

    async def obligation_of(
        backend: Backend, token: str, agreement_id: str, obligation_id: str
    ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        answer = await backend.read(
            backend.projections, token, f"/v1/agreements/{quote(agreement_id, safe='')}"
        )
        if answer.status != 200:
            return None, None
        agreement: dict[str, Any] = answer.body
        for obligation in agreement.get("obligations", []):
            if obligation["obligation_id"] == obligation_id:
                return agreement, obligation
        return agreement, None

    def report_parties(official: Official, obligation: dict[str, Any]) -> list[str]:
        holders = [obligation["lead_party_id"], *obligation.get("supporting_party_ids", [])]
        return [party for party in official.party_ids if party in holders]

    def report_form(
        request: Request,
        session: sessions.Session,
        official: Official,
        agreement: dict[str, Any],
        obligation: dict[str, Any],
        values: dict[str, str],
        errors: dict[str, str],
        status: int = 200,
        general: str | None = None,
    ) -> Response:
        names = {party["party_id"]: party["name"] for party in agreement.get("parties", [])}
        context = {
            "title": "Báo cáo tiến độ",
            "agreement": agreement,
            "obligation": obligation,
            "parties": [(party, names.get(party, party)) for party in report_parties(official, obligation)],
            "values": values,
            "errors": errors,
            "general_error": general,
            # A new key each time the form is drawn: a double submit of this drawing is one report.
            "idempotency_key": secrets.token_urlsafe(24),
        }
        return page(request, "report.html", session, context, status)

    @app.get("/bao-cao/{agreement_id}/{obligation_id}", response_class=HTMLResponse)
    async def report_page(request: Request, agreement_id: str, obligation_id: str) -> Response:
        found = signed_in(request)
        if found is None:
            return to_sign_in()
        session, official = found
        backend: Backend = request.app.state.backend
        agreement, obligation = await obligation_of(backend, token_for(official), agreement_id, obligation_id)
        if agreement is None or obligation is None:
            return refused(request, 404, "Không tìm thấy thỏa thuận hoặc nhiệm vụ này.")
        parties = report_parties(official, obligation)
        values = {
            "party_id": parties[0] if parties else "",
            "period": vietnamese.current_period(obligation["cadence"], _today()),
            "status": "in_progress",
            "completion_percent": "",
            "summary": "",
            "reported_on": _today().isoformat(),
        }
        return report_form(request, session, official, agreement, obligation, values, {})

    @app.post("/bao-cao/{agreement_id}/{obligation_id}")
    async def report(request: Request, agreement_id: str, obligation_id: str) -> Response:
        form = await checked_form(request)
        if isinstance(form, Response):
            return form
        found = signed_in(request)
        if found is None:
            return to_sign_in()
        session, official = found
        backend: Backend = request.app.state.backend
        token = token_for(official)
        agreement, obligation = await obligation_of(backend, token, agreement_id, obligation_id)
        if agreement is None or obligation is None:
            return refused(request, 404, "Không tìm thấy thỏa thuận hoặc nhiệm vụ này.")
        values = {name: form.get(name, "").strip() for name in REPORT_FIELDS}
        errors: dict[str, str] = {}
        if values["party_id"] not in report_parties(official, obligation):
            errors["party_id"] = "Anh/chị không được báo cáo thay đơn vị này."
        if values["status"] not in vietnamese.REPORT_STATUSES:
            errors["status"] = FIELD_MESSAGES["status"]
        percent: int | None = None
        if values["completion_percent"]:
            if values["completion_percent"].isascii() and values["completion_percent"].isdigit():
                percent = int(values["completion_percent"])
            if percent is None or not 0 <= percent <= 100:
                errors["completion_percent"] = FIELD_MESSAGES["completion_percent"]
        try:
            dt.date.fromisoformat(values["reported_on"])
        except ValueError:
            errors["reported_on"] = FIELD_MESSAGES["reported_on"]
        if not values["period"]:
            errors["period"] = "Vui lòng nhập kỳ báo cáo."
        key = form.get("idempotency_key", "")
        if not 1 <= len(key) <= 255:
            return refused(request, 400, "Biểu mẫu không hợp lệ. Vui lòng mở lại biểu mẫu báo cáo.")
        if errors:
            return report_form(request, session, official, agreement, obligation, values, errors, 422)
        body: dict[str, Any] = {
            "obligation_id": obligation_id,
            "party_id": values["party_id"],
            "period": values["period"],
            "status": values["status"],
            "reported_on": values["reported_on"],
        }
        if percent is not None:
            body["completion_percent"] = percent
        if values["summary"]:
            body["summary"] = values["summary"]
        answer = await backend.report_progress(token, agreement_id, body, key)
        if answer.status == 201:
            position = int(answer.body["position"])
            target = f"/thoa-thuan/{quote(agreement_id, safe='')}?min_position={position}&da_ghi=1"
            return RedirectResponse(target, status_code=303)
        general = None
        if answer.status == 422 and isinstance(answer.body, dict):
            for error in answer.body.get("errors") or []:
                loc = error.get("loc") or []
                field = str(loc[1]) if len(loc) > 1 and loc[0] == "body" else ""
                if field in FIELD_MESSAGES and field not in errors:
                    errors[field] = FIELD_MESSAGES[field]
                elif field not in FIELD_MESSAGES:
                    general = "Báo cáo không hợp lệ. Vui lòng kiểm tra lại các trường."
        elif answer.status == 409:
            general = (
                "Thỏa thuận đã kết thúc hoặc đang được xử lý: báo cáo chưa được ghi. Vui lòng thử lại sau."
            )
        elif answer.status == 403:
            general = "Anh/chị không có quyền báo cáo cho đơn vị này."
        else:
            general = "Hệ thống đăng ký tạm thời không trả lời. Báo cáo chưa được ghi; vui lòng thử lại."
        if not errors and general is None:
            general = "Báo cáo không hợp lệ."
        return report_form(request, session, official, agreement, obligation, values, errors, 422, general)

    # --- an agreement -------------------------------------------------------------------------------

    @app.get("/thoa-thuan/{agreement_id}", response_class=HTMLResponse)
    async def agreement_page(request: Request, agreement_id: str) -> Response:
        found = signed_in(request)
        if found is None:
            return to_sign_in()
        session, official = found
        backend: Backend = request.app.state.backend
        token = token_for(official)
        params: dict[str, Any] = {}
        min_position = request.query_params.get("min_position", "")
        if min_position.isascii() and min_position.isdigit() and len(min_position) <= 18:
            params["min_position"] = min_position
        path = quote(agreement_id, safe="")
        answer = await backend.read(backend.projections, token, f"/v1/agreements/{path}", params)
        if answer.status == 503:
            return refused(request, 503, "Dữ liệu đang được cập nhật. Vui lòng tải lại trang sau ít giây.")
        if answer.status != 200:
            return refused(request, 404, "Không tìm thấy thỏa thuận này.")
        events = await backend.read(backend.registry, token, f"/v1/agreements/{path}/events")
        agreement = answer.body
        names = {party["party_id"]: party["name"] for party in agreement.get("parties", [])}
        names.update({party["party_id"]: party["name"] for party in agreement.get("former_parties", [])})
        context = {
            "title": f"Thỏa thuận {agreement['document_number']}",
            "agreement": agreement,
            "names": names,
            "events": events.body.get("events", []) if events.status == 200 else [],
            "reported": request.query_params.get("da_ghi") == "1",
            "my_parties": official.party_ids,
        }
        return page(request, "agreement.html", session, context)

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
