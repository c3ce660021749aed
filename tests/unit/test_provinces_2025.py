"""The provinces of Resolution 202/2025/QH15: the data's shape, the four mergers the issue names,
the switch on 1 July 2025, names as people write them, and the lookup's purity."""

from __future__ import annotations

import ast
import unicodedata
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from deploy.demo.load import demo_agreements
from services.directory import provinces
from services.directory.provinces import (
    Province,
    ProvinceMap,
    Source,
    UnknownProvince,
    canonical_name,
    current_province,
    former_provinces,
    province_map,
)

MAP = province_map()
SUCCESSOR = {former: p.name for p in MAP.provinces for former in p.formed_from}
BEFORE, SWITCH = date(2025, 6, 30), date(2025, 7, 1)


def test_the_source_is_in_the_file() -> None:
    source = MAP.source
    assert source.number == "202/2025/QH15"
    assert source.title == "Nghị quyết số 202/2025/QH15 về việc sắp xếp đơn vị hành chính cấp tỉnh"
    assert source.issuer.startswith("Quốc hội")
    assert source.adopted_on == source.in_force_from == date(2025, 6, 12)
    assert source.effective == SWITCH


def test_63_former_units_become_34_each_former_in_exactly_one() -> None:
    assert len(MAP.provinces) == len({p.name for p in MAP.provinces}) == 34
    counts = Counter(former for p in MAP.provinces for former in p.formed_from)
    assert len(counts) == 63
    assert set(counts.values()) == {1}
    assert set(MAP.former_names) == set(counts)
    # Every unit formed by a merger took the name of one of the units merged into it.
    assert all(p.name in p.formed_from for p in MAP.provinces)


def test_23_units_are_merged_from_two_or_three_and_11_are_unchanged() -> None:
    merged = [p for p in MAP.provinces if p.merged]
    unchanged = [p for p in MAP.provinces if not p.merged]
    assert len(merged) == 23 and {len(p.formed_from) for p in merged} == {2, 3}
    assert len(unchanged) == 11 and all(p.formed_from == (p.name,) for p in unchanged)
    assert {p.name for p in unchanged} == {
        "Cao Bằng", "Điện Biên", "Hà Tĩnh", "Lai Châu", "Lạng Sơn", "Nghệ An",
        "Quảng Ninh", "Thanh Hóa", "Sơn La", "Hà Nội", "Huế",
    }  # fmt: skip
    # 28 provinces and 6 cities; 19 provinces and 4 cities are formed by merging.
    assert Counter(p.kind for p in MAP.provinces) == {"tỉnh": 28, "thành phố": 6}
    assert Counter(p.kind for p in merged) == {"tỉnh": 19, "thành phố": 4}


@pytest.mark.parametrize(
    ("current", "formers"),
    [
        ("Phú Thọ", {"Hòa Bình", "Vĩnh Phúc", "Phú Thọ"}),
        ("Gia Lai", {"Bình Định", "Gia Lai"}),
        ("Thái Nguyên", {"Bắc Kạn", "Thái Nguyên"}),
        ("Lào Cai", {"Yên Bái", "Lào Cai"}),
    ],
)
def test_the_mergers_the_issue_states(current: str, formers: set[str]) -> None:
    assert set(former_provinces(current)) == formers
    assert {current_province(former, SWITCH) for former in formers} == {current}


@pytest.mark.parametrize("former", sorted(SUCCESSOR))
def test_a_former_unit_is_itself_until_30_june_and_its_successor_from_1_july(former: str) -> None:
    assert current_province(former, BEFORE) == former
    assert current_province(former, date(2019, 1, 1)) == former
    assert current_province(former, SWITCH) == SUCCESSOR[former]
    assert former in former_provinces(current_province(former, date(2030, 1, 1)))


def test_the_switch_on_the_demo_localities() -> None:
    assert current_province("Hòa Bình", BEFORE) == "Hòa Bình"
    assert current_province("Hòa Bình", SWITCH) == "Phú Thọ"
    assert current_province("Bình Định", SWITCH) == "Gia Lai"
    # A current unit is itself on both sides, though on each side it covers a different area.
    assert current_province("Phú Thọ", BEFORE) == current_province("Phú Thọ", SWITCH) == "Phú Thọ"


def test_every_locality_of_the_demo_data_resolves() -> None:
    localities = {agreement["body"]["locality"] for agreement in demo_agreements()}
    assert localities, "the demo data has agreements"
    for locality in localities:
        assert canonical_name(locality) == locality
        assert current_province(locality, SWITCH) in {p.name for p in MAP.provinces}


@pytest.mark.parametrize(
    ("written", "name"),
    [
        ("Hòa Bình", "Hòa Bình"),
        ("hòa bình", "Hòa Bình"),
        ("  HÒA    BÌNH ", "Hòa Bình"),
        (unicodedata.normalize("NFD", "Hòa Bình"), "Hòa Bình"),
        ("Hoà Bình", "Hòa Bình"),  # the older placement of the tone mark
        ("hoa binh", "Hòa Bình"),
        ("tỉnh Hòa Bình", "Hòa Bình"),
        ("Tỉnh  Hòa Bình", "Hòa Bình"),
        ("TINH HOA BINH", "Hòa Bình"),
        ("Thành phố Hồ Chí Minh", "Hồ Chí Minh"),
        ("thanh pho ho chi minh", "Hồ Chí Minh"),
        ("TP. Hồ Chí Minh", "Hồ Chí Minh"),
        ("TP.Hồ Chí Minh", "Hồ Chí Minh"),
        ("TP Hồ Chí Minh", "Hồ Chí Minh"),
        ("Tp. Cần Thơ", "Cần Thơ"),
        ("thành phố Huế", "Huế"),
        ("Bà Rịa - Vũng Tàu", "Bà Rịa - Vũng Tàu"),
        ("Bà Rịa-Vũng Tàu", "Bà Rịa - Vũng Tàu"),
        ("tỉnh Bà Rịa – Vũng Tàu", "Bà Rịa - Vũng Tàu"),
        ("Ba Ria Vung Tau", "Bà Rịa - Vũng Tàu"),
        ("Dak Lak", "Đắk Lắk"),
        ("Đăk Lăk", "Đắk Lắk"),
        ("thanh hoa", "Thanh Hóa"),  # "Thanh" is a name here, not the start of "thành phố"
    ],
)
def test_names_match_as_people_write_them(written: str, name: str) -> None:
    assert canonical_name(written) == name


def test_names_are_stored_in_nfc() -> None:
    assert all(unicodedata.is_normalized("NFC", name) for name in MAP.former_names)


@pytest.mark.parametrize("written", ["Hà Tây", "Atlantis", "", "   ", "tỉnh", "Thành phố", "TP.", "Hòa"])
def test_an_unknown_name_is_refused(written: str) -> None:
    with pytest.raises(UnknownProvince) as refused:
        current_province(written, SWITCH)
    assert refused.value.name == written
    assert repr(written) in str(refused.value)


def test_the_refusal_names_the_resolution() -> None:
    with pytest.raises(UnknownProvince, match=r"'Hà Tây': not one of .* Resolution 202/2025/QH15"):
        former_provinces("Hà Tây")


def test_former_provinces_of_a_unit_merged_away_is_refused_with_its_successor() -> None:
    with pytest.raises(UnknownProvince, match="merged into Phú Thọ from 2025-07-01"):
        former_provinces("hoa binh")


def test_current_units_name_their_kind() -> None:
    assert MAP.province("TP. Hồ Chí Minh").official_name == "Thành phố Hồ Chí Minh"
    assert MAP.province("Phú Thọ").official_name == "Tỉnh Phú Thọ"
    assert MAP.province("Huế").kind == "thành phố"


SOURCE = Source("1/2099/QH99", "test", "test", date(2099, 1, 1), date(2099, 1, 1), date(2099, 2, 1))


def test_diacritics_are_folded_only_when_the_folded_name_is_one_units() -> None:
    """None of the 63 names differ only in diacritics, so a made-up map shows the rule."""
    made_up = ProvinceMap(
        SOURCE, (Province("Hà Nam", "tỉnh", ("Hà Nam",)), Province("Hạ Nam", "tỉnh", ("Hạ Nam",)))
    )
    assert made_up.canonical("hà nam") == "Hà Nam"
    assert made_up.canonical("HẠ NAM") == "Hạ Nam"
    with pytest.raises(UnknownProvince, match=r"could be any of \['Hà Nam', 'Hạ Nam'\]"):
        made_up.canonical("Ha Nam")


def test_a_map_with_a_unit_merged_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="merged into both"):
        ProvinceMap(
            SOURCE,
            (
                Province("A Lưới", "tỉnh", ("A Lưới", "Bình Minh")),
                Province("Bình Minh", "tỉnh", ("Bình Minh",)),
            ),
        )


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_the_lookup_is_pure() -> None:
    """Read from its source: it imports computing modules only, the search-key module does too,
    and the packages on the way to it import nothing."""
    module = Path(provinces.__file__)
    search_text = module.parents[1] / "common" / "search_text.py"
    assert _imports(module) == {
        "__future__", "functools", "json", "unicodedata", "collections.abc", "dataclasses", "datetime",
        "importlib", "typing", "services.common.search_text",
    }  # fmt: skip
    assert _imports(search_text) == {"__future__", "functools", "unicodedata"}
    for package in (module.parent, search_text.parent):
        assert _imports(package / "__init__.py") == set()
