"""How the console writes things in Vietnamese: dates as dd/mm/yyyy, periods, the names of the
contract's codes (kinds, roles, cadences, statuses, event types, document types, kinds of body),
and Vietnamese alphabetical order."""

from __future__ import annotations

import datetime as dt
import unicodedata
from collections.abc import Mapping

from coordreg_contracts import document_types, periods
from coordreg_contracts.common import Cadence

# Vietnam's time (UTC+7, no daylight saving), for the timestamps the services give in UTC.
VIETNAM = dt.timezone(dt.timedelta(hours=7), "ICT")

KINDS = {
    "program": "Chương trình phối hợp",
    "regulation": "Quy chế phối hợp",
    "plan": "Kế hoạch",
    "joint_resolution": "Nghị quyết liên tịch",
}
ROLES = {"lead": "Chủ trì", "member": "Thành viên", "supporter": "Phối hợp"}
CADENCES = {
    "monthly": "Hằng tháng",
    "quarterly": "Hằng quý",
    "semiannual": "6 tháng một lần",
    "annual": "Hằng năm",
    "once": "Một lần",
}
REPORT_STATUSES = {
    "not_started": "Chưa bắt đầu",
    "in_progress": "Đang thực hiện",
    "at_risk": "Có nguy cơ chậm",
    "blocked": "Gặp vướng mắc",
    "completed": "Hoàn thành",
}
OBLIGATION_STATUSES = {"active": "Đang thực hiện", "withdrawn": "Đã rút", "closed": "Đã kết thúc"}
AGREEMENT_STATUSES = {"active": "Còn hiệu lực", "closed": "Đã kết thúc"}
# The types of a document number, by their abbreviation in Appendix III, part I, of Decree
# 30/2020/NĐ-CP on clerical work (Nghị định số 30/2020/NĐ-CP ngày 05/3/2020 của Chính phủ về
# công tác văn thư), with the appendix's own names: the contract keeps the table.
DOCUMENT_TYPES: dict[str, str] = {code: name for code, name in document_types.DOCUMENT_TYPES.items()}
# The directory's kinds of body (docs/CONTRACT.md, decision 15).
PARTY_KINDS = {
    "peoples_committee": "Ủy ban nhân dân",
    "peoples_council": "Hội đồng nhân dân",
    "front_committee": "Ủy ban Mặt trận Tổ quốc Việt Nam",
    "department": "Sở, ban, ngành",
    "ministry": "Bộ, cơ quan ngang bộ",
    "mass_organisation": "Tổ chức chính trị - xã hội, tổ chức hội",
    "bank": "Ngân hàng",
    "press": "Cơ quan báo chí",
    "court_or_procuracy": "Tòa án, Viện kiểm sát",
    "armed_forces": "Lực lượng vũ trang",
    "other": "Khác",
    "unclassified": "Chưa phân loại",
}
PARTY_STATUSES = {"active": "Đang hoạt động", "ceased": "Đã chấm dứt hoạt động"}
OUTCOMES = {
    "completed": "hoàn thành",
    "terminated": "chấm dứt trước thời hạn",
    "superseded": "được thay thế",
    "expired": "hết thời hạn",
}
EVENT_TYPES = {
    "AgreementSigned": "Ký kết",
    "AgreementAmended": "Sửa đổi, bổ sung",
    "ProgressReported": "Báo cáo tiến độ",
    "TermClosed": "Kết thúc",
    "ObligationsTransferred": "Chuyển giao nhiệm vụ do sắp xếp tổ chức",
    "PartyRegistered": "Đăng ký đơn vị",
    "PartyRenamed": "Đổi tên đơn vị",
    "SuccessionRecorded": "Ghi nhận đơn vị kế thừa",
}
CHANGES = {
    "add_obligation": "thêm nhiệm vụ",
    "revise_obligation": "điều chỉnh nhiệm vụ",
    "withdraw_obligation": "rút nhiệm vụ",
    "add_party": "thêm bên tham gia",
    "remove_party": "bớt bên tham gia",
    "change_term": "thay đổi thời hạn",
}
# Vietnamese alphabetical order puts ă and â after a, ê after e, ô and ơ after o, ư after u and
# đ after d: the breve, circumflex and horn (and đ's bar) make letters of their own; the tone
# marks only break ties.
_LETTER_MARKS = {"\u0306": 1, "\u0302": 2, "\u031b": 3}
_ROMAN = {1: "I", 2: "II", 3: "III", 4: "IV"}


def date(value: str | None) -> str:
    """`2024-03-01` (or a timestamp's date) as `01/03/2024`; anything else as it is."""
    if not value:
        return ""
    try:
        day = dt.date.fromisoformat(value[:10])
    except ValueError:
        return value
    return day.strftime("%d/%m/%Y")


def timestamp(value: str | None) -> str:
    """An RFC 3339 timestamp as Vietnam's date and time: `07/12/2026 11:54`."""
    if not value:
        return ""
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(VIETNAM).strftime("%d/%m/%Y %H:%M")


def period(value: str | None) -> str:
    """`2024` Năm 2024, `2024-H1` 6 tháng đầu năm 2024, `2024-Q3` Quý III/2024, `2024-07` Tháng 07/2024."""
    if not value:
        return ""
    try:
        year, form, number = periods.parts(value)
    except ValueError:
        return value
    if form is Cadence.ANNUAL:
        return f"Năm {year}"
    if form is Cadence.SEMIANNUAL:
        return f"6 tháng {'đầu' if number == 1 else 'cuối'} năm {year}"
    if form is Cadence.QUARTERLY:
        return f"Quý {_ROMAN[number]}/{year}"
    return f"Tháng {number:02d}/{year}"


def period_in_sentence(value: str | None) -> str:
    """The period's name inside a sentence: `quý III/2024`, `năm 2024` (only its first letter
    lowered: `| lower` would write `quý iii`)."""
    name = period(value)
    return name[:1].lower() + name[1:]


def sort_key(text: str) -> tuple[list[tuple[str, int]], str]:
    """A key that orders names as a Vietnamese dictionary does: Cao Bằng before Cần Thơ (a < â),
    Đà Nẵng after every name in D (d < đ)."""
    letters: list[tuple[str, int]] = []
    for char in unicodedata.normalize("NFD", text.casefold()):
        if char in _LETTER_MARKS and letters:
            letters[-1] = (letters[-1][0], _LETTER_MARKS[char])
        elif char == "đ":
            letters.append(("d", 4))
        elif not unicodedata.combining(char):
            letters.append((char, 0))
    return letters, text


def label(table: Mapping[str, str], code: str | None) -> str:
    if code is None:
        return ""
    return table.get(code, code)
