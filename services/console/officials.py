"""The demo officials of the development sign-in: invented people (deploy/demo/README.md lists
them), each acting for bodies of the demo data (deploy/demo/agreements.json, successions.json).

Production has no such table: there a person signs in through the province's identity provider
and the access token carries the parties they act for (services/console/oidc.py, ADR 0019)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Official:
    official_id: str  # recorded by the registry as the events' actor (the token's `sub`)
    name: str
    position: str
    party_ids: tuple[str, ...]


DEMO_OFFICIALS: tuple[Official, ...] = (
    Official(
        "demo-nguyen-thi-hoa",
        "Nguyễn Thị Hoa",
        "Chuyên viên Ban Thường trực Ủy ban MTTQ Việt Nam tỉnh Phú Thọ",
        ("mttq-phu-tho",),
    ),
    Official(
        "demo-tran-van-binh",
        "Trần Văn Bình",
        "Chuyên viên Sở Nội vụ tỉnh Phú Thọ",
        # and for the Labour department of Hòa Bình, which Sở Nội vụ Phú Thọ succeeded on
        # 1 July 2025 (deploy/demo/successions.json): its late reports (decision 18)
        ("snv-phu-tho", "sldtbxh-hoa-binh"),
    ),
    Official(
        "demo-le-thi-thu",
        "Lê Thị Thu",
        "Chuyên viên Hội Chữ thập đỏ tỉnh Phú Thọ",
        ("hctd-phu-tho",),
    ),
    Official(
        "demo-pham-van-duc",
        "Phạm Văn Đức",
        "Chuyên viên Ủy ban MTTQ Việt Nam tỉnh Thái Nguyên",
        ("mttq-thai-nguyen",),
    ),
    Official(
        "demo-hoang-thi-mai",
        "Hoàng Thị Mai",
        "Chuyên viên Văn phòng Ủy ban nhân dân tỉnh Lào Cai",
        ("ubnd-lao-cai",),
    ),
)

BY_ID = {official.official_id: official for official in DEMO_OFFICIALS}
