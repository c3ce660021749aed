"""The report form's refusals on the real stack, each in Vietnamese beside the field it concerns
and writing nothing (issue 23): a predecessor reporting a period after its succession (the
registry's decision 18), a withdrawn obligation, a body the person does not hold (not offered by
the page, refused by the registry if forced), and bad values in every field. Plain HTTP to the
console (no browser): the browser tests cover the same form in chromium."""

from __future__ import annotations

from typing import Any

import httpx

from services.console.backend import DevelopmentMinter
from services.console.officials import BY_ID
from services.console.settings import ConsoleSettings
from tests.e2e.test_succession import transfers_done
from tests.support.builders import poverty_programme
from tests.support.stack import Stack

PREDECESSOR = "sldtbxh-hoa-binh"  # ceased on 1 July 2025; Sở Nội vụ Phú Thọ succeeded it
SUCCESSOR = "snv-phu-tho"
FRONT = "mttq-hoa-binh"
OFFICIAL = BY_ID["demo-tran-van-binh"]  # acts for SUCCESSOR and, for its late reports, PREDECESSOR


def hidden(html: str, name: str) -> str:
    """The value of the form's hidden input `name`."""
    _, found, rest = html.partition(f'name="{name}" value="')
    assert found, f"no hidden {name} in the page"
    return rest.partition('"')[0]


def beside(html: str, field: str) -> str:
    """The message beside a field (`<p class="field-error" id="loi-FIELD">`), or ''."""
    _, found, rest = html.partition(f'id="loi-{field}">')
    return rest.partition("</p>")[0] if found else ""


async def events(stack: Stack, agreement_id: str) -> list[dict[str, Any]]:
    answer = await stack.registry.get(f"/v1/agreements/{agreement_id}/events")
    found: list[dict[str, Any]] = answer.json()["events"]
    return found


async def test_every_refusal_is_beside_its_field_and_writes_nothing(stack: Stack, console: str) -> None:
    body = poverty_programme(PREDECESSOR, FRONT, "05/CTr-SLĐTBXH-MTTQ")
    body["obligations"].append(
        {
            "obligation_id": "tuyen-truyen",
            "title": "Tuyên truyền chính sách giảm nghèo",
            "lead_party_id": PREDECESSOR,
            "cadence": "annual",
        }
    )
    signer = stack.bearer(stack.token(party_ids=[PREDECESSOR, FRONT]))
    signed = (await stack.registry.post("/v1/agreements", json=body, headers=signer)).json()
    agreement_id = signed["agreement_id"]
    amendment = {
        "document_number": "07/QĐ-MTTQ",
        "reason": "Gộp vào nhiệm vụ giảm nghèo",
        "effective_on": "2024-06-01",
        "changes": [{"op": "withdraw_obligation", "obligation_id": "tuyen-truyen"}],
    }
    amended = await stack.registry.post(f"/v1/agreements/{agreement_id}/amendments", json=amendment)
    assert amended.status_code == 200, amended.text
    await stack.register_party(SUCCESSOR, "Sở Nội vụ tỉnh Phú Thọ", province="Phú Thọ", unit_code="25")
    succession = {
        "effective_on": "2025-07-01",
        "legal_basis": "45/2025/NĐ-CP",
        "successor_party_id": SUCCESSOR,
    }
    recorded = await stack.registry.post(f"/v1/parties/{PREDECESSOR}/succession", json=succession)
    assert recorded.status_code == 200, recorded.text
    await transfers_done(stack, PREDECESSOR)
    await stack.wait_for_position(int((await events(stack, agreement_id))[-1]["position"]))
    written = len(await events(stack, agreement_id))

    async with httpx.AsyncClient(base_url=console, timeout=30) as browser:
        csrf = hidden((await browser.get("/dang-nhap")).text, "csrf")
        signed_in = await browser.post("/dang-nhap", data={"csrf": csrf, "official": OFFICIAL.official_id})
        assert signed_in.status_code == 303, signed_in.text
        form_url = f"/bao-cao/{agreement_id}/giam-ngheo"
        form = (await browser.get(form_url)).text
        # The page offers the person's bodies that hold the obligation or held it until the
        # succession; never the Front committee, which the person does not act for.
        assert f'value="{SUCCESSOR}"' in form and f'value="{PREDECESSOR}"' in form
        assert f'value="{FRONT}"' not in form

        async def send(url: str, **fields: str) -> httpx.Response:
            page = (await browser.get(url)).text
            values = {
                "csrf": hidden(page, "csrf"),
                "idempotency_key": hidden(page, "idempotency_key"),
                "party_id": PREDECESSOR,
                "period": "2024",
                "status": "in_progress",
                "completion_percent": "",
                "summary": "",
                "reported_on": "2026-11-20",
                **fields,
            }
            return await browser.post(url, data=values)

        # The predecessor, for a period after its succession: when it ceased, by which decision,
        # and who reports instead.
        refused = await send(form_url, period="2026")
        assert refused.status_code == 422
        message = beside(refused.text, "party_id")
        assert "đã chấm dứt hoạt động từ ngày 01/07/2025 theo 45/2025/NĐ-CP" in message, message
        assert "Sở Nội vụ tỉnh Phú Thọ báo cáo thay" in message, message
        assert 'aria-invalid="true"' in refused.text

        # A withdrawn obligation: beside the obligation the form is about.
        withdrawn = await send(f"/bao-cao/{agreement_id}/tuyen-truyen")
        assert withdrawn.status_code == 422
        assert "Nhiệm vụ đã bị rút" in beside(withdrawn.text, "obligation_id"), withdrawn.text

        # Bad values of every field, each refused beside it by the console.
        for field, value, words in (
            ("party_id", FRONT, "không được báo cáo thay đơn vị này"),
            ("period", "", "Vui lòng nhập kỳ báo cáo"),
            ("period", "2024-13", "Kỳ báo cáo không hợp lệ"),
            ("status", "done", "Vui lòng chọn tình trạng thực hiện"),
            ("completion_percent", "101", "số nguyên từ 0 đến 100"),
            ("completion_percent", "５０", "số nguyên từ 0 đến 100"),
            ("reported_on", "20/11/2026", "ngày phải có dạng"),
            ("reported_on", "2023-01-01", "không trước ngày ký"),
            ("summary", "x" * 10_001, "quá dài"),
        ):
            answer = await send(form_url, **{field: value})
            assert answer.status_code == 422, (field, value, answer.status_code)
            assert words in beside(answer.text, field), (field, value, answer.text[-3000:])

        assert len(await events(stack, agreement_id)) == written

        # The predecessor's late report, for a period before its succession, is taken.
        late = await send(form_url, period="2024")
        assert late.status_code == 303, late.text
        assert len(await events(stack, agreement_id)) == written + 1

    # Forced past the page: the person's own token, for a body the person does not hold.
    minter = DevelopmentMinter(ConsoleSettings(session_secret="s" * 40))
    person = stack.bearer(minter.mint(OFFICIAL.official_id, OFFICIAL.party_ids))
    forced = await stack.registry.post(
        f"/v1/agreements/{agreement_id}/progress-reports",
        json={
            "obligation_id": "giam-ngheo",
            "party_id": FRONT,
            "period": "2024",
            "status": "in_progress",
            "reported_on": "2026-11-20",
        },
        headers={**person, "Idempotency-Key": "forced-front"},
    )
    assert forced.status_code == 403, forced.text
    assert len(await events(stack, agreement_id)) == written + 1
