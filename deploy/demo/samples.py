"""Sample command bodies: one home for the data the tests and the benchmark both send.

`HOA_BINH` is the programme the Standing Board of Ủy ban MTTQ tỉnh Hòa Bình signed with the
provincial Red Cross on 25/4/2023 (the first seed article, see deploy/demo/README.md).
`programme()` is the same programme as another province would sign it: the tests vary
`HOA_BINH` (tests/support/builders.py), the benchmark signs one per generated agreement
across `PROVINCES` (bench/workload.py), and the in-process load generator spreads its
agreements over the same provinces (tests/support/load.py).

Every body is valid under the contract (docs/CONTRACT.md), so a refusal is a real finding.
"""

from __future__ import annotations

from typing import Any

# (locality as it is written, slug that ends the party ids of that province)
PROVINCES: list[tuple[str, str]] = [
    ("Hòa Bình", "hoa-binh"),
    ("Lào Cai", "lao-cai"),
    ("Bắc Kạn", "bac-kan"),
    ("Quảng Ninh", "quang-ninh"),
    ("Đắk Lắk", "dak-lak"),
    ("Cà Mau", "ca-mau"),
    ("Nghệ An", "nghe-an"),
    ("Thừa Thiên Huế", "hue"),
]

TITLE = "Chương trình phối hợp công tác vì người nghèo, an sinh xã hội và cứu trợ"


def programme(
    locality: str,
    slug: str,
    document_number: str,
    *,
    title: str = TITLE,
    womens_union: bool = False,
) -> dict[str, Any]:
    """The 2023-2027 programme of the province's Fatherland Front (lead) and Red Cross.

    With `womens_union`, the provincial Women's Union joins as a member without a signatory
    and supports both obligations (a three-party agreement, as the benchmark signs).
    """
    front, red_cross, women = f"mttq-{slug}", f"hctd-{slug}", f"hlhpn-{slug}"
    parties: list[dict[str, Any]] = [
        {
            "party_id": front,
            "name": f"Ủy ban MTTQ Việt Nam tỉnh {locality}",
            "role": "lead",
            "signatory": {"name": "Bùi Tiến Lực", "title": "Chủ tịch"},
        },
        {
            "party_id": red_cross,
            "name": f"Hội Chữ thập đỏ tỉnh {locality}",
            "role": "member",
            "signatory": {"name": "Đinh Thị Hương", "title": "Chủ tịch"},
        },
    ]
    supporters: list[str] = []
    if womens_union:
        parties.append({"party_id": women, "name": f"Hội Liên hiệp Phụ nữ tỉnh {locality}", "role": "member"})
        supporters.append(women)
    return {
        "document_number": document_number,
        "kind": "program",
        "title": title,
        "locality": locality,
        "signed_on": "2023-04-25",
        "term": {"start": "2023-01-01", "end": "2027-12-31"},
        "parties": parties,
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
                "lead_party_id": front,
                "supporting_party_ids": [red_cross, *supporters],
                "cadence": "annual",
            },
            {
                "obligation_id": "tuyen-truyen",
                "title": "Công tác tuyên truyền",
                "description": f"Tuyên truyền trên Báo {locality} và Đài PT-TH tỉnh",
                "lead_party_id": red_cross,
                "supporting_party_ids": list(supporters),
                "cadence": "quarterly",
            },
        ],
        "parent_agreement_id": None,
    }


HOA_BINH: dict[str, Any] = programme("Hòa Bình", "hoa-binh", "25/NDPH-MTTQ-HCTĐ")
