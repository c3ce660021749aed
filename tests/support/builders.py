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
