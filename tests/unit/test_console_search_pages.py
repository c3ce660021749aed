"""The console's search (`/tim-kiem`) and body (`/don-vi/{id}`) pages, in process: what they
refuse before asking the projections (a Vietnamese message beside the field, never a 500), how
they read the projections' refusals, and the lists they offer. The pages on the real stack, in
Chromium: tests/e2e/test_console_search.py."""

from __future__ import annotations

import html
import re
from typing import get_args

import httpx
import pytest
from coordreg_contracts.document_types import DocumentType

from services.console import vietnamese
from services.console.backend import Answer
from services.console.pages import body, search
from services.console.provinces import current_provinces
from services.console.settings import ConsoleSettings
from services.directory.provinces import province_map
from tests.unit.test_console_pages import SECRET, client


async def signed_in(console: httpx.AsyncClient) -> None:
    page = await console.get("/dang-nhap")
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None
    signed = await console.post("/dang-nhap", data={"csrf": found.group(1), "official": "demo-tran-van-binh"})
    assert signed.status_code == 303


def beside(page: str, field: str) -> str:
    """The message drawn beside a field (its `loi-<field>` paragraph), unescaped."""
    found = re.search(rf'<p class="field-error" id="loi-{field}">([^<]*)</p>', page)
    assert found is not None, f"no message beside {field}"
    return html.unescape(found.group(1))


async def test_the_pages_need_a_sign_in() -> None:
    async with client(ConsoleSettings(session_secret=SECRET)) as console:
        for path in ("/tim-kiem?q=x", "/don-vi/snv-phu-tho"):
            answer = await console.get(path)
            assert answer.status_code == 303 and answer.headers["location"] == "/dang-nhap"


async def test_the_search_form_alone_asks_nothing_and_marks_the_current_page() -> None:
    # No backend runs here: a page that asked the projections would fail.
    async with client(ConsoleSettings(session_secret=SECRET)) as console:
        await signed_in(console)
        page = await console.get("/tim-kiem")
        assert page.status_code == 200
        text = page.text
        assert '<form method="get" action="/tim-kiem" role="search"' in text
        for field in search.FILTERS:
            assert f'<label for="{field}">' in text and f'id="{field}" name="{field}"' in text
        assert '<a href="/tim-kiem" aria-current="page">Tìm kiếm thỏa thuận</a>' in text
        assert 'id="ket-qua"' not in text  # no results before a search
        assert text.count("<option value=") == 1 + 34 + 1 + len(vietnamese.DOCUMENT_TYPES) + 1 + 2
        assert '<option value="Phú Thọ">Tỉnh Phú Thọ (hợp nhất Hòa Bình, Phú Thọ, Vĩnh Phúc)</option>' in text
        assert '<option value="CTr">Chương trình (CTr)</option>' in text


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"q": "x" * 301}, "q", "Từ khóa quá dài: tối đa 300 ký tự."),
        ({"q": "chuyen\x00doi"}, "q", search.NUL),
        ({"q": "", "document_type": "CTPH"}, "document_type", search.MESSAGES["document_type"]),
        ({"q": "", "document_type": "ctr"}, "document_type", search.MESSAGES["document_type"]),
        ({"q": "", "status": "open"}, "status", search.MESSAGES["status"]),
        ({"q": "", "locality": "Atlantis"}, "locality", search.MESSAGES["locality"]),
        # A former province: the list offers the units as they are now.
        ({"q": "", "locality": "Hòa Bình"}, "locality", search.MESSAGES["locality"]),
    ],
)
async def test_bad_filters_get_a_vietnamese_message_beside_the_field(
    query: dict[str, str], field: str, message: str
) -> None:
    async with client(ConsoleSettings(session_secret=SECRET)) as console:
        await signed_in(console)
        page = await console.get("/tim-kiem", params=query)
        assert page.status_code == 422
        assert beside(page.text, field) == message
        assert f'aria-describedby="goi-y-{field} loi-{field}"' in page.text or (
            f'aria-describedby="loi-{field}"' in page.text
        )
        assert "aria-invalid" in page.text
        assert "Chưa tìm được. Vui lòng sửa các trường được đánh dấu bên dưới." in page.text
        # What was typed is drawn again, escaped.
        if field == "q" and len(query["q"]) > 300:
            assert f'value="{query["q"]}"' in page.text


async def test_a_typed_value_is_escaped() -> None:
    async with client(ConsoleSettings(session_secret=SECRET)) as console:
        await signed_in(console)
        page = await console.get("/tim-kiem", params={"q": '"><script>alert(1)</script>' + "x" * 300})
        assert page.status_code == 422
        assert "<script>" not in page.text
        assert "&#34;&gt;&lt;script&gt;" in page.text


def test_the_projections_refusals_are_read_as_messages() -> None:
    refused_cursor = Answer(400, {"status": 400, "detail": "cursor must be a value returned as next_cursor"})
    assert search.refusal_of(refused_cursor) == ({}, search.CURSOR_REFUSED)
    too_long_cursor = Answer(422, {"errors": [{"loc": ["query", "cursor"], "msg": "too long"}]})
    assert search.refusal_of(too_long_cursor) == ({}, search.CURSOR_REFUSED)
    bad_type = Answer(
        422,
        {
            "errors": [
                {"loc": ["query", "document_type"], "msg": "Input should be 'NQ', ..."},
                {"loc": ["query", "q"], "msg": "too long"},
            ]
        },
    )
    assert search.refusal_of(bad_type) == (
        {"document_type": search.MESSAGES["document_type"], "q": search.MESSAGES["q"]},
        None,
    )
    errors, general = search.refusal_of(Answer(422, {"errors": [{"loc": ["query", "limit"]}]}))
    assert errors == {} and general is not None and "không hợp lệ" in general
    errors, general = search.refusal_of(Answer(422, {"errors": ["not an object"]}))
    assert errors == {} and general is not None
    assert search.refusal_of(Answer(503, None)) == ({}, search.UNREADABLE)
    assert search.refusal_of(Answer(500, "Internal Server Error")) == ({}, search.UNREADABLE)


def test_a_next_page_keeps_the_search() -> None:
    values = {"q": "chuyển đổi số", "locality": "Phú Thọ", "document_type": "", "status": "active"}
    assert search.page_link(values, "1065353216.42") == (
        "/tim-kiem?q=chuy%E1%BB%83n+%C4%91%E1%BB%95i+s%E1%BB%91&locality=Ph%C3%BA+Th%E1%BB%8D"
        "&document_type=&status=active&cursor=1065353216.42"
    )
    assert search.page_link(values).endswith("&status=active")


def test_the_body_pages_lists() -> None:
    assert body.listed(Answer(200, {"events": [{"a": 1}], "next_cursor": "7"}), "events") == (
        [{"a": 1}],
        "7",
        None,
    )
    assert body.listed(Answer(400, {}), "events") == ([], None, body.CURSOR_REFUSED)
    assert body.listed(Answer(422, {}), "obligations") == ([], None, body.CURSOR_REFUSED)
    assert body.listed(Answer(503, None), "events") == ([], None, body.UNREADABLE)
    assert body.event_name("vn.gov.coordination.SuccessionRecorded.v1") == "SuccessionRecorded"
    for name in (
        "AgreementSigned",
        "ProgressReported",
        "PartyRegistered",
        "PartyRenamed",
        "SuccessionRecorded",
    ):
        assert name in vietnamese.EVENT_TYPES


def test_the_province_list_is_the_directorys_34_in_vietnamese_order() -> None:
    offered = current_provinces()
    assert sorted(p.name for p in offered) == sorted(p.name for p in province_map().provinces)
    assert len(offered) == 34
    names = [p.name for p in offered]
    # a < ă < â, d < đ; tone marks only break ties.
    assert names.index("Cao Bằng") < names.index("Cần Thơ") < names.index("Đà Nẵng")
    assert names.index("Điện Biên") < names.index("Đồng Nai") < names.index("Gia Lai")
    assert names.index("Lạng Sơn") < names.index("Lào Cai") < names.index("Lâm Đồng")
    assert [p.official_name for p in offered if p.name == "Hồ Chí Minh"] == ["Thành phố Hồ Chí Minh"]


def test_the_document_types_offered_are_the_contracts() -> None:
    assert sorted(vietnamese.DOCUMENT_TYPES) == sorted(get_args(DocumentType))
    assert vietnamese.DOCUMENT_TYPES["KH"] == "Kế hoạch"


def test_every_kind_of_body_has_a_vietnamese_name() -> None:
    from coordreg_contracts.parties import PartyKind

    assert sorted(vietnamese.PARTY_KINDS) == sorted(kind.value for kind in PartyKind)
