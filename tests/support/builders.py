"""Request bodies taken from the Hòa Bình signing of 25/4/2023 (seeds/000), varied per test."""

from __future__ import annotations

import copy
import uuid
from typing import Any

HOA_BINH: dict[str, Any] = {
    "document_number": "25/NDPH-MTTQ-HCTĐ",
    "kind": "program",
    "title": "Chương trình phối hợp công tác vì người nghèo, an sinh xã hội và cứu trợ",
    "locality": "Hòa Bình",
    "signed_on": "2023-04-25",
    "term": {"start": "2023-01-01", "end": "2027-12-31"},
    "parties": [
        {
            "party_id": "mttq-hoa-binh",
            "name": "Ủy ban MTTQ Việt Nam tỉnh Hòa Bình",
            "role": "lead",
            "signatory": {"name": "Bùi Tiến Lực", "title": "Chủ tịch"},
        },
        {
            "party_id": "hctd-hoa-binh",
            "name": "Hội Chữ thập đỏ tỉnh Hòa Bình",
            "role": "member",
            "signatory": {"name": "Đinh Thị Hương", "title": "Chủ tịch"},
        },
    ],
    "legal_basis": [
        {
            "reference": "40-CT/TW",
            "issued_on": "2014-11-22",
            "issuer": "Ban Bí thư",
            "title": "Về tăng cường sự lãnh đạo của Đảng đối với tín dụng chính sách xã hội",
        }
    ],
    "obligations": [
        {
            "obligation_id": "nhan-dao",
            "title": "Tổ chức hoạt động nhân đạo, từ thiện và an sinh xã hội",
            "description": "Phối hợp vận động quỹ “Vì người nghèo” và cứu trợ đột xuất",
            "lead_party_id": "mttq-hoa-binh",
            "supporting_party_ids": ["hctd-hoa-binh"],
            "cadence": "annual",
        },
        {
            "obligation_id": "tuyen-truyen",
            "title": "Công tác tuyên truyền",
            "description": "Tuyên truyền trên Báo Hòa Bình và Đài PT-TH tỉnh",
            "lead_party_id": "hctd-hoa-binh",
            "supporting_party_ids": [],
            "cadence": "quarterly",
        },
    ],
    "parent_agreement_id": None,
}


def sign_body(**overrides: Any) -> dict[str, Any]:
    """A valid signing with a fresh document number (unless given) and the overrides applied."""
    body = copy.deepcopy(HOA_BINH)
    body["document_number"] = f"{uuid.uuid4().hex[:6]}/CTPH-MTTQ-HCTĐ"
    body.update(copy.deepcopy(overrides))
    return body


def report_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "obligation_id": "nhan-dao",
        "party_id": "hctd-hoa-binh",
        "period": "2024",
        "status": "in_progress",
        "completion_percent": 60,
        "summary": "Vận động 1,2 tỷ đồng quỹ Vì người nghèo",
        "reported_on": "2024-12-20",
        "evidence": [{"document_number": "45/BC-HCTĐ", "title": "Báo cáo kết quả năm 2024"}],
    }
    body.update(overrides)
    return body
