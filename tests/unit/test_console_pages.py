"""The console's sessions, CSRF checks, production refusal and Vietnamese formats, in process
(no backend needed: these pages do not reach the registry or the projections)."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.console import due, sessions, vietnamese
from services.console.app import create_app
from services.console.settings import ConsoleSettings
from services.transparency import note

SECRET = "s" * 40
# A log key of a production registry's own (production refuses to start without one).
PRODUCTION_LOG_KEY = (
    note.Signer("registry.example.gov.vn/agreements", Ed25519PrivateKey.generate()).verifier().key()
)


def client(settings: ConsoleSettings) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(settings)), base_url="http://console"
    )


def test_a_session_cookie_round_trips_and_a_changed_one_is_refused() -> None:
    person = sessions.Person(subject="demo-le-thi-thu", name="Lê Thị Thu", party_ids=("hctd-phu-tho",))
    session = sessions.new_session(60).signed_in_as(person, 60)
    cookie = sessions.encode(session, SECRET)
    assert sessions.decode(cookie, SECRET) == session
    assert sessions.decode(cookie, "another secret " * 3) is None
    assert sessions.decode(cookie, SECRET, now=session.expires + 1) is None
    assert sessions.decode("garbage", SECRET) is None
    assert sessions.decode("", SECRET) is None


def test_csrf_must_match_the_session() -> None:
    session = sessions.new_session(60)
    assert sessions.csrf_matches(session, session.csrf)
    assert not sessions.csrf_matches(session, "forged")
    assert not sessions.csrf_matches(session, "")
    assert not sessions.csrf_matches(None, session.csrf)


async def test_development_sign_in_needs_the_csrf_token_and_sets_a_safe_cookie() -> None:
    async with client(ConsoleSettings(session_secret=SECRET)) as console:
        page = await console.get("/dang-nhap")
        assert page.status_code == 200
        assert '<html lang="vi">' in page.text
        assert "Đăng nhập phát triển (chỉ dùng thử)" in page.text
        assert "<script" not in page.text
        assert page.headers["content-security-policy"].startswith("default-src 'self'")
        assert "form-action 'self';" in page.headers["content-security-policy"]
        cookie = page.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie
        refused = await console.post("/dang-nhap", data={"csrf": "forged", "official": "demo-le-thi-thu"})
        assert refused.status_code == 403
        assert "Yêu cầu bị từ chối" in refused.text
        found = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert found is not None
        signed = await console.post(
            "/dang-nhap", data={"csrf": found.group(1), "official": "demo-le-thi-thu"}
        )
        assert signed.status_code == 303
        assert signed.headers["location"] == "/"


PRODUCTION: dict[str, Any] = {
    "environment": "production",
    "session_secret": SECRET,
    # Nothing listens on port 1: the provider cannot be reached.
    "oidc_issuer": "https://127.0.0.1:1/realms/coordreg",
    "public_url": "https://canbo.example",
    "log_key": PRODUCTION_LOG_KEY,
}


async def test_production_refuses_the_development_sign_in_and_sends_secure_cookies() -> None:
    async with client(ConsoleSettings(**PRODUCTION)) as console:
        assert (await console.post("/dang-nhap", data={"official": "demo-le-thi-thu"})).status_code == 404
        # The sign-in goes to the identity provider; unreachable, it is a Vietnamese 503, no 500.
        page = await console.get("/dang-nhap")
        assert page.status_code == 503
        assert "Không kết nối được với hệ thống xác thực" in page.text
        assert "secure" in page.headers["set-cookie"].lower()
        assert "Đăng nhập phát triển" not in page.text


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"session_secret": ""}, "CONSOLE_SESSION_SECRET is required"),
        ({"oidc_issuer": ""}, "CONSOLE_OIDC_ISSUER is required"),
        ({"oidc_issuer": "http://idp.example/realms/x"}, "CONSOLE_OIDC_ISSUER must be an https"),
        ({"public_url": ""}, "CONSOLE_PUBLIC_URL must be an https"),
        ({"public_url": "http://canbo.example"}, "CONSOLE_PUBLIC_URL must be an https"),
    ],
)
def test_production_refuses_to_start_without_a_secret_a_provider_or_https(
    changes: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ConsoleSettings(**{**PRODUCTION, **changes})


def test_vietnamese_dates_and_periods() -> None:
    assert vietnamese.date("2024-03-01") == "01/03/2024"
    assert vietnamese.timestamp("2026-12-07T20:30:00Z") == "08/12/2026 03:30"
    assert vietnamese.period("2024") == "Năm 2024"
    assert vietnamese.period("2024-H2") == "6 tháng cuối năm 2024"
    assert vietnamese.period("2024-Q3") == "Quý III/2024"
    assert vietnamese.period("2024-07") == "Tháng 07/2024"
    day = dt.date(2026, 8, 15)
    assert [due.current_period(c, day) for c in ("monthly", "quarterly", "semiannual", "annual", "once")] == [
        "2026-08",
        "2026-Q3",
        "2026-H2",
        "2026",
        "2026",
    ]
    assert vietnamese.period_in_sentence("2024-Q3") == "quý III/2024"
    assert vietnamese.period_in_sentence("2024") == "năm 2024"
    assert vietnamese.period("2024-Q5") == "2024-Q5"  # not a period: as it is


@pytest.mark.parametrize(
    ("method", "path", "status", "words"),
    [
        ("GET", "/don-vi/a/b", 404, "Không có trang này"),
        ("GET", "/khong-co", 404, "Không có trang này"),
        ("GET", "/static/khong-co.css", 404, "Không có trang này"),
        ("DELETE", "/dang-nhap", 405, "không nhận yêu cầu theo cách này"),
    ],
)
async def test_an_address_no_page_answers_gets_a_vietnamese_page(
    method: str, path: str, status: int, words: str
) -> None:
    async with client(ConsoleSettings(session_secret=SECRET)) as console:
        answer = await console.request(method, path)
    assert answer.status_code == status
    assert answer.headers["content-type"].startswith("text/html")
    assert '<html lang="vi">' in answer.text and words in answer.text
    assert "Not Found" not in answer.text and "Method Not Allowed" not in answer.text
    assert answer.headers["content-security-policy"].startswith("default-src 'self'")
    if status == 405:
        assert "GET" in answer.headers["allow"]
