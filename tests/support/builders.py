"""Request bodies taken from the Hòa Bình signing of 25/4/2023 (seeds/000), varied per test.

The signing itself lives in deploy/demo/samples.py, which the benchmark shares.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

from deploy.demo.samples import HOA_BINH as HOA_BINH


def sign_body(**overrides: Any) -> dict[str, Any]:
    """A valid signing with a fresh document number (unless given) and the overrides applied."""
    body = copy.deepcopy(HOA_BINH)
    # 12 hex digits: among the thousands of signings of a fault scenario, two equal numbers (a
    # real 409 for the second) would be likely with 6 (birthday bound, about 3% per 1,000).
    body["document_number"] = f"{uuid.uuid4().hex[:12]}/CTPH-MTTQ-HCTĐ"
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


def poverty_programme(labour_department: str, front: str, document_number: str) -> dict[str, Any]:
    """A 2023 signing whose lead, a provincial Labour department, ceased on 1 July 2025 (the
    succession tests: docs/CONTRACT.md, decisions 15-19)."""
    return {
        "document_number": document_number,
        "kind": "program",
        "title": "Chương trình phối hợp thực hiện giảm nghèo bền vững giai đoạn 2023–2027",
        "locality": "Hòa Bình",
        "signed_on": "2023-03-15",
        "term": {"start": "2023-01-01", "end": "2027-12-31"},
        "parties": [
            {
                "party_id": labour_department,
                "name": "Sở Lao động – Thương binh và Xã hội tỉnh Hòa Bình",
                "role": "lead",
            },
            {"party_id": front, "name": "Ủy ban MTTQ Việt Nam tỉnh Hòa Bình", "role": "member"},
        ],
        "obligations": [
            {
                "obligation_id": "giam-ngheo",
                "title": "Phối hợp thực hiện giảm nghèo bền vững",
                "lead_party_id": labour_department,
                "supporting_party_ids": [front],
                "cadence": "annual",
            }
        ],
    }
