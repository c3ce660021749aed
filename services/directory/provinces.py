"""The 63 → 34 provinces of Resolution 202/2025/QH15, as a pure lookup.

`current_province(name, on)` is the unit that governs a former province on a date: before the
switch (1 July 2025, `effective` in the data) a province is itself; from then on, the unit it was
merged into. `former_provinces(name)` is the units a current one was formed from.

Names match as people write them: case, runs of spaces and the dash of "Bà Rịa - Vũng Tàu" do
not matter, nor a leading kind ("tỉnh", "thành phố", "TP", "TP."; the kind written is not checked
against the unit's). Diacritics are compared first; only if the name as written, diacritics
included, is no unit's name are they folded away (with `search_key`, the read model's own
folding, so "Hoa Binh" and the old placement "Hoà Bình" find "Hòa Bình"), and the folded form
is used only when it belongs to exactly one unit: two names that differ only in diacritics would
each need theirs (none of the 63 do). A name that matches nothing raises `UnknownProvince`.

Pure: the only I/O is reading the packaged JSON, once, through importlib.resources. The
normalisation reuses `services.common.search_text.search_key` (shared with the read side), which imports only
functools and unicodedata (its packages' `__init__` files are empty), so that locality searches
and this lookup fold names the same way.
"""

from __future__ import annotations

import functools
import json
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from importlib import resources
from typing import Any, Literal, cast

from services.common.search_text import search_key

DATA_FILE = "provinces_2025.json"
_PACKAGE = __name__.rpartition(".")[0]
Kind = Literal["tỉnh", "thành phố"]
_KINDS: tuple[Kind, ...] = ("tỉnh", "thành phố")
# Hyphen, non-breaking hyphen, figure dash, en dash, em dash, minus: "Bà Rịa-Vũng Tàu" is written every way.
_DASHES = dict.fromkeys(map(ord, "-\u2010\u2011\u2012\u2013\u2014\u2212"), " ")


class UnknownProvince(LookupError):
    """A name that is none of the provincial units before or after the resolution (or, asked for
    a current unit, a unit merged away)."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name!r}: {reason}")
        self.name = name


@dataclass(frozen=True, slots=True)
class Province:
    """One of the 34 units in force from the switch."""

    name: str
    kind: Kind
    formed_from: tuple[str, ...]

    @property
    def official_name(self) -> str:
        return f"{self.kind.capitalize()} {self.name}"

    @property
    def merged(self) -> bool:
        return len(self.formed_from) > 1


@dataclass(frozen=True, slots=True)
class Source:
    number: str
    title: str
    issuer: str
    adopted_on: date
    in_force_from: date
    effective: date


def _written_key(text: str) -> str:
    """Case, spacing, dashes and Unicode form folded away; diacritics kept."""
    return " ".join(unicodedata.normalize("NFC", text).translate(_DASHES).casefold().split())


def _without_kind(key: str) -> str:
    words = key.split(" ")
    if search_key(words[0]) == "tinh":
        return " ".join(words[1:])
    if search_key(" ".join(words[:2])) == "thanh pho":
        return " ".join(words[2:])
    if words[0] == "tp":
        return " ".join(words[1:])
    if words[0].startswith("tp."):
        # "TP.Hồ Chí Minh", without a space, is how letterheads often write it.
        return " ".join([words[0][3:], *words[1:]]).strip()
    return key


class ProvinceMap:
    """The units before and after the switch, indexed by the names people write."""

    def __init__(self, source: Source, provinces: tuple[Province, ...]) -> None:
        self.source = source
        self.provinces = provinces
        self._current = {p.name: p for p in provinces}
        self._successor: dict[str, str] = {}
        for province in provinces:
            for former in province.formed_from:
                if former in self._successor:
                    raise ValueError(
                        f"{former!r} is merged into both {self._successor[former]!r} and {province.name!r}"
                    )
                self._successor[former] = province.name
        missing = [name for name in self._current if self._successor.get(name) != name]
        if missing:
            raise ValueError(f"a current unit must carry the name of one of its former units: {missing}")
        self._written: dict[str, str] = {}
        folded: dict[str, set[str]] = {}
        for name in self._successor:
            key = _written_key(name)
            if _without_kind(key) != key:
                raise ValueError(f"{name!r} begins with a word read as a kind of unit")
            self._written[key] = name
            folded.setdefault(search_key(key), set()).add(name)
        self._folded = {key: frozenset(names) for key, names in folded.items()}

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> ProvinceMap:
        source = document["source"]
        provinces = []
        for unit in document["units"]:
            if unit["kind"] not in _KINDS:
                raise ValueError(f"{unit['name']!r}: kind {unit['kind']!r} is not one of {_KINDS}")
            provinces.append(Province(unit["name"], cast(Kind, unit["kind"]), tuple(unit["formed_from"])))
        return cls(
            Source(
                number=source["number"],
                title=source["title"],
                issuer=source["issuer"],
                adopted_on=date.fromisoformat(source["adopted_on"]),
                in_force_from=date.fromisoformat(source["in_force_from"]),
                effective=date.fromisoformat(source["effective"]),
            ),
            tuple(provinces),
        )

    @property
    def former_names(self) -> tuple[str, ...]:
        return tuple(self._successor)

    def canonical(self, name: str) -> str:
        """The unit's name as the data writes it, before or after the switch."""
        key = _without_kind(_written_key(name))
        if not key:
            raise UnknownProvince(name, "names no unit")
        if key in self._written:
            return self._written[key]
        candidates = self._folded.get(search_key(key), frozenset())
        if len(candidates) == 1:
            return next(iter(candidates))
        if candidates:
            raise UnknownProvince(name, f"without its diacritics it could be any of {sorted(candidates)}")
        raise UnknownProvince(
            name, f"not one of the provincial-level units before or after Resolution {self.source.number}"
        )

    def current_province(self, name: str, on: date) -> str:
        former = self.canonical(name)
        return former if on < self.source.effective else self._successor[former]

    def province(self, name: str) -> Province:
        canonical = self.canonical(name)
        if canonical not in self._current:
            raise UnknownProvince(
                name,
                f"merged into {self._successor[canonical]} from {self.source.effective.isoformat()}; "
                "not one of the current units",
            )
        return self._current[canonical]

    def former_provinces(self, name: str) -> tuple[str, ...]:
        return self.province(name).formed_from


@functools.cache
def province_map() -> ProvinceMap:
    """The packaged map, read on first use."""
    text = resources.files(_PACKAGE).joinpath(DATA_FILE).read_text(encoding="utf-8")
    return ProvinceMap.from_json(json.loads(text))


def canonical_name(name: str) -> str:
    return province_map().canonical(name)


def current_province(name: str, on: date) -> str:
    """The unit governing the (former or current) province `name` on the day `on`."""
    return province_map().current_province(name, on)


def former_provinces(name: str) -> tuple[str, ...]:
    """The units the current unit `name` was formed from (itself alone if it was left unchanged)."""
    return province_map().former_provinces(name)


def province_or_none(name: str) -> str | None:
    """The unit's canonical name, or None for a name that is no province before or after."""
    try:
        return canonical_name(name)
    except UnknownProvince:
        return None
