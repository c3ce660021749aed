"""Where an agreement was signed, as it is governed now: the provinces of Resolution
202/2025/QH15 (`services.directory.provinces`), for the `locality_now` of the read models and
the `locality` filter, which matches the locality as signed or as it is now."""

from __future__ import annotations

import functools

from services.common.search_text import search_key
from services.directory.provinces import UnknownProvince, current_province, province_map, province_or_none


@functools.lru_cache(maxsize=4096)  # a handful of localities, on every event of every agreement
def locality_now(locality: str) -> str:
    """The province governing `locality` from the switch on (a province merged away: the one
    it was merged into); a locality that is no province's name, as written."""
    try:
        return current_province(locality, province_map().source.effective)
    except UnknownProvince:
        return locality


def locality_keys(query: str) -> list[str]:
    """The keys (`search_key`) a `locality` filter matches: the query as written and, when it
    names a province, the province's own name ("tỉnh Phú Thọ" is "Phú Thọ")."""
    keys = [search_key(query)]
    canonical = province_or_none(query)
    if canonical is not None and search_key(canonical) not in keys:
        keys.append(search_key(canonical))
    return keys
