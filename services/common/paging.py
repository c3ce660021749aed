"""Pages bounded in bytes as well as in items (docs/CONTRACT.md B7, B11; ADR 0005).

A list whose items can each be large (an event's envelope, a log leaf's record: up to about
the request body limit each) is bounded by the bytes of its items' JSON, not only by their
count: a page stops before the item that would take it past the budget, and always holds at
least one item, so a client can always make progress. The items are rendered once, here, and
the answer is written from those bytes, so what is measured is exactly what is sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from fastapi.responses import Response

# What `JSONResponse` writes, so that a page reads byte for byte as it did before.
_SEPARATORS = (",", ":")


def render(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, indent=None, separators=_SEPARATORS).encode(
        "utf-8"
    )


def within_bytes(rendered: Iterable[bytes], budget: int) -> tuple[list[bytes], bool]:
    """The leading items whose bytes (with a separator each) fit `budget`, at least one; and
    whether an item was left out for the budget (then more follow)."""
    taken: list[bytes] = []
    used = 0
    for item in rendered:
        size = len(item) + 1
        if taken and used + size > budget:
            return taken, True
        taken.append(item)
        used += size
    return taken, False


def json_with_list(members: dict[str, Any], name: str, items: list[bytes], status: int = 200) -> Response:
    """`{"<name>": [<items>], <members>...}` as application/json, from already rendered items."""
    tail = b"".join(b"," + render(key) + b":" + render(value) for key, value in members.items())
    body = b"{" + render(name) + b":[" + b",".join(items) + b"]" + tail + b"}"
    return Response(body, status_code=status, media_type="application/json")
