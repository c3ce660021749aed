"""How the console writes things in Vietnamese: dates as dd/mm/yyyy, periods, and the names of
the contract's codes (kinds, roles, cadences, statuses, event types)."""

from __future__ import annotations

import datetime as dt

from coordreg_contracts.patterns import full_match

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
}
CHANGES = {
    "add_obligation": "thêm nhiệm vụ",
    "revise_obligation": "điều chỉnh nhiệm vụ",
    "withdraw_obligation": "rút nhiệm vụ",
    "add_party": "thêm bên tham gia",
    "remove_party": "bớt bên tham gia",
    "change_term": "thay đổi thời hạn",
}
_ROMAN = {"1": "I", "2": "II", "3": "III", "4": "IV"}
# Matched whole (full_match: no trailing newline slips past `$`), ASCII digits only.
_PERIOD = r"([0-9]{4})(?:-(H[12]|Q[1-4]|[0-9]{2}))?"


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
    found = full_match(_PERIOD, value)
    if found is None:
        return value
    year, part = found.groups()
    if part is None:
        return f"Năm {year}"
    if part == "H1":
        return f"6 tháng đầu năm {year}"
    if part == "H2":
        return f"6 tháng cuối năm {year}"
    if part.startswith("Q"):
        return f"Quý {_ROMAN[part[1]]}/{year}"
    return f"Tháng {part}/{year}"


def current_period(cadence: str, today: dt.date) -> str:
    """The period of `today` in the contract's notation for a cadence."""
    if cadence == "monthly":
        return f"{today.year}-{today.month:02d}"
    if cadence == "quarterly":
        return f"{today.year}-Q{(today.month - 1) // 3 + 1}"
    if cadence == "semiannual":
        return f"{today.year}-H{1 if today.month <= 6 else 2}"
    return str(today.year)


def label(table: dict[str, str], code: str | None) -> str:
    if code is None:
        return ""
    return table.get(code, code)
