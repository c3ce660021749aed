"""The types of administrative documents, as Appendix III of Decree 30/2020/NĐ-CP abbreviates them.

Decree 30/2020/NĐ-CP on clerical work (Nghị định số 30/2020/NĐ-CP ngày 05/3/2020 của Chính
phủ về công tác văn thư), Appendix III, part I ("Viết tắt tên loại văn bản"): the abbreviation
that a document number carries after its serial (`104/KH-UBND`, a kế hoạch). The projections
file each agreement under it (`GET /v1/agreements?document_type=`), and the officials' console
offers it as a search filter, so it is part of the contract, not of one service.

Listed: the entries whose abbreviation is certain. Left out until checked against the decree's
published text: bản ghi nhớ, bản thỏa thuận, giấy ủy quyền, giấy giới thiệu and giấy nghỉ phép
(GN, TTh, UQ, GT, NP in Circular 01/2011/TT-BNV, which the decree replaced; probably BGN, BTT,
GUQ, GGT, GNP in the decree), and the copies (SY, TrS, SL) of part II. A type left out reads as
unknown, like any type not listed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

# The abbreviations are also a type, so that a query parameter is validated against them and
# OpenAPI lists them; `DOCUMENT_TYPES` names each, and the two must hold the same ones
# (tests/unit/test_document_numbers.py).
DocumentType = Literal[
    "NQ", "QĐ", "CT", "QC", "QyĐ", "TC", "TB", "HD", "CTr", "KH", "PA",
    "ĐA", "DA", "BC", "BB", "TTr", "HĐ", "CĐ", "GM", "PG", "PC", "PB",
]  # fmt: skip
# Each abbreviation's name, as the appendix writes it.
DOCUMENT_TYPES: Mapping[DocumentType, str] = {
    "NQ": "Nghị quyết (cá biệt)",
    "QĐ": "Quyết định (cá biệt)",
    "CT": "Chỉ thị",
    "QC": "Quy chế",
    "QyĐ": "Quy định",
    "TC": "Thông cáo",
    "TB": "Thông báo",
    "HD": "Hướng dẫn",
    "CTr": "Chương trình",
    "KH": "Kế hoạch",
    "PA": "Phương án",
    "ĐA": "Đề án",
    "DA": "Dự án",
    "BC": "Báo cáo",
    "BB": "Biên bản",
    "TTr": "Tờ trình",
    "HĐ": "Hợp đồng",
    "CĐ": "Công điện",
    "GM": "Giấy mời",
    "PG": "Phiếu gửi",
    "PC": "Phiếu chuyển",
    "PB": "Phiếu báo",
}
