"""The 34 provincial units in force since 1 July 2025 (Resolution 202/2025/QH15), offered by the
search's province filter as a list rather than a free text field: nothing to mistype, and a
`<select>` is read the same way by every screen reader and keyboard.

Read from the directory's data file (`services/directory/provinces_2025.json`, shipped in the
same `services` package), the project's one list of them, rather than through the directory's
code, which the console may not import (pyproject.toml's import-linter contract): the console
reaches other services only over HTTP, and this is data, not a service.

The projections' `locality` filter matches the locality as signed or as governed now
(docs/CONTRACT.md, the additions of decision 15), so choosing a unit finds the agreements signed
in the units it was formed from.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

from services.console.vietnamese import sort_key

DATA_FILE = Path(__file__).resolve().parents[1] / "directory" / "provinces_2025.json"


@dataclass(frozen=True)
class Province:
    name: str  # as agreements and the resolution write it: "Phú Thọ", "Hồ Chí Minh"
    kind: str  # "tỉnh" or "thành phố"
    formed_from: tuple[str, ...]

    @property
    def official_name(self) -> str:
        return f"{self.kind.capitalize()} {self.name}"

    @property
    def choice(self) -> str:
        """What the filter's list shows: the official name and, for a merger, what it took in."""
        if len(self.formed_from) < 2:
            return self.official_name
        formed = ", ".join(sorted(self.formed_from, key=sort_key))
        return f"{self.official_name} (hợp nhất {formed})"


@functools.cache
def current_provinces() -> tuple[Province, ...]:
    """The units in Vietnamese alphabetical order."""
    document = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    units = (Province(unit["name"], unit["kind"], tuple(unit["formed_from"])) for unit in document["units"])
    return tuple(sorted(units, key=lambda province: sort_key(province.name)))


@functools.cache
def province_names() -> frozenset[str]:
    return frozenset(province.name for province in current_provinces())
