"""An example of each command's body, in Vietnamese, from the demo data (deploy/demo/): a real
agreement, amendment, report, closing and succession as the demo loads them, so that an
integrator sees in the OpenAPI documents what a body looks like. Each command model carries its
own in its JSON Schema (`examples`), and so in the document's component of that name. Members
that the demo sends as `null` are left out (the OpenAPI documents drop them from examples).

tests/unit/test_body_examples.py checks that each validates against its model and against the
published schema, and that each is a body of the demo's files (the rename's is the one that is
not: the demo renames nobody; it spells out a demo party's name, "MTTQ" as "Mặt trận Tổ quốc").
"""

from __future__ import annotations

from typing import Any

# agreements.json `tn-2023-nhan-dao`: Thái Nguyên's humanitarian programme, 14/7/2023.
SIGN_AGREEMENT: dict[str, Any] = {
    "document_number": "03/CTPH-MTTQ-HCTĐ",
    "kind": "program",
    "title": "Chương trình phối hợp tổ chức hoạt động nhân đạo, từ thiện và an sinh xã hội giai đoạn 2023 - 2027",
    "locality": "Thái Nguyên",
    "signed_on": "2023-07-14",
    "term": {"start": "2023-07-14", "end": "2027-12-31"},
    "parties": [
        {
            "party_id": "mttq-thai-nguyen",
            "name": "Ủy ban MTTQ Việt Nam tỉnh Thái Nguyên",
            "role": "lead",
            "signatory": {"name": "Hoàng Văn Thắng", "title": "Chủ tịch"},
        },
        {
            "party_id": "hctd-thai-nguyen",
            "name": "Hội Chữ thập đỏ tỉnh Thái Nguyên",
            "role": "member",
            "signatory": {"name": "Lương Thị Hà", "title": "Chủ tịch"},
        },
    ],
    "legal_basis": [
        {
            "reference": "43-CT/TW",
            "issued_on": "2010-06-08",
            "issuer": "Ban Bí thư Trung ương Đảng (khóa X)",
            "title": "Về tăng cường sự lãnh đạo của Đảng đối với công tác Hội Chữ thập đỏ Việt Nam trong tình hình mới",
        }
    ],
    "obligations": [
        {
            "obligation_id": "nhan-dao-tu-thien",
            "title": "Tổ chức hoạt động nhân đạo, từ thiện và an sinh xã hội",
            "description": "Phát huy sự chủ động sáng tạo của Hội Chữ thập đỏ trong tổ chức các cuộc vận động, phong trào thi đua do cấp có thẩm quyền phát động, lan tỏa tinh thần nhân ái.",
            "lead_party_id": "hctd-thai-nguyen",
            "supporting_party_ids": ["mttq-thai-nguyen"],
            "cadence": "annual",
        },
        {
            "obligation_id": "phoi-hop-van-dong",
            "title": "Phối hợp các cuộc vận động, tránh chồng chéo ở cơ sở",
            "description": "Phát huy vai trò phối hợp của Mặt trận; tránh sự chồng chéo về nội dung, đối tượng trong tổ chức các cuộc vận động ở cơ sở, địa bàn dân cư.",
            "lead_party_id": "mttq-thai-nguyen",
            "supporting_party_ids": ["hctd-thai-nguyen"],
            "cadence": "annual",
        },
    ],
}

# lifecycle.json: the term of 25/NDPH-MTTQ-HCTĐ (Hòa Bình, 2018) extended.
AMEND_AGREEMENT_TERM: dict[str, Any] = {
    "document_number": "12/TB-MTTQ-HCTĐ",
    "reason": "Kéo dài thời hạn thực hiện đến khi ký kết chương trình phối hợp giai đoạn 2023 - 2027",
    "effective_on": "2023-01-05",
    "changes": [{"op": "change_term", "term": {"start": "2018-03-23", "end": "2023-04-30"}}],
}

# lifecycle.json: Bình Định's regulation with the veterans gains a digital transformation task.
AMEND_AGREEMENT_OBLIGATION: dict[str, Any] = {
    "document_number": "01/SĐBS-UBND-HCCB",
    "reason": "Bổ sung nội dung tham gia công tác chuyển đổi số",
    "effective_on": "2024-03-01",
    "changes": [
        {
            "op": "add_obligation",
            "obligation": {
                "obligation_id": "chuyen-doi-so",
                "title": "Tham gia công tác chuyển đổi số",
                "description": "Tuyên truyền, hướng dẫn hội viên cựu chiến binh tham gia công tác chuyển đổi số, ứng dụng công nghệ số trong sản xuất, kinh doanh và đời sống.",
                "lead_party_id": "hccb-binh-dinh",
                "supporting_party_ids": ["ubnd-binh-dinh"],
                "cadence": "annual",
            },
        }
    ],
}

# lifecycle.json: the Bắc Kạn Front's Covid-19 monitoring of 11-14/02/2020 (33/KH-MTTQ-BTT).
REPORT_PROGRESS: dict[str, Any] = {
    "obligation_id": "giam-sat-phan-bien",
    "party_id": "mttq-bac-kan",
    "period": "2020",
    "status": "in_progress",
    "completion_percent": 10,
    "summary": "Giám sát công tác triển khai, tuyên truyền, vận động nhân dân phòng, chống dịch viêm đường hô hấp cấp do chủng mới của vi rút Corona (nCoV) tại một số đơn vị, địa phương từ ngày 11-14/02/2020.",
    "reported_on": "2020-02-14",
    "evidence": [
        {
            "document_number": "33/KH-MTTQ-BTT",
            "title": "Kế hoạch giám sát công tác phòng, chống dịch bệnh do nCoV ngày 07/02/2020",
        }
    ],
}

# lifecycle.json: the Bắc Kạn 2020 programme closed, completed.
CLOSE_TERM: dict[str, Any] = {
    "closed_on": "2020-12-31",
    "outcome": "completed",
    "summary": "Tổng kết Chương trình phối hợp năm 2020; các nội dung phối hợp đã hoàn thành.",
}

# successions.json: Phú Thọ's Front committee, successor of Hòa Bình's (2025).
REGISTER_PARTY: dict[str, Any] = {
    "party_id": "mttq-phu-tho",
    "name": "Ủy ban MTTQ Việt Nam tỉnh Phú Thọ",
    "kind": "front_committee",
    "province": "Phú Thọ",
}

# Not in the demo (it renames nobody): `mttq-hoa-binh`'s name spelled out, on its 2023 signing day.
RENAME_PARTY: dict[str, Any] = {
    "name": "Ủy ban Mặt trận Tổ quốc Việt Nam tỉnh Hòa Bình",
    "effective_on": "2023-04-25",
}

# successions.json: `mttq-hoa-binh` ceased; `mttq-phu-tho` took over (202/2025/QH15).
RECORD_SUCCESSION: dict[str, Any] = {
    "effective_on": "2025-07-01",
    "legal_basis": "202/2025/QH15",
    "successor_party_id": "mttq-phu-tho",
}
