"""Search text: case and Vietnamese diacritics folded away, so `chuyen doi so` finds `Chuyển đổi số`."""

from __future__ import annotations

import functools
import unicodedata


@functools.lru_cache(maxsize=65536)  # titles and localities repeat on every event of an agreement
def search_key(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(stripped.casefold().split())
