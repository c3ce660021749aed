"""Text the database cannot store is refused as bad input (422), before it reaches a query or the log.

PostgreSQL's `text` (and `jsonb`) cannot hold U+0000, and a lone surrogate (U+D800-U+DFFF)
is not encodable as UTF-8. Both are valid JSON and valid Python strings, so without this
check they surfaced as 500s (a path or query parameter reaching SQL) or, in a command,
as an event the projections could not apply. The check runs after authentication (from
`require`, and in the command routes for their bodies), so the order of answers stays
401 / 403 before 422.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute

Loc = tuple[str | int, ...]

# One scan in C for both: a character-by-character check in Python was a fifth of the
# registry's CPU per command (bench --profile).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def unstorable(text: str) -> str | None:
    """Why the database cannot store `text`, or None when it can."""
    if _UNSTORABLE.search(text) is None:
        return None
    if "\x00" in text:
        return "must not contain the NUL character (U+0000)"
    return "must not contain a lone surrogate (U+D800 to U+DFFF)"


def unstorable_in(value: Any, loc: Loc) -> Iterator[tuple[Loc, str]]:
    """Every string (key or value) below `value` the database cannot store, with its location."""
    if isinstance(value, str):
        if (reason := unstorable(value)) is not None:
            yield loc, reason
    elif value is None or isinstance(value, int | float):
        # The common leaves, answered before the (slower) abstract-class checks below.
        return
    elif isinstance(value, dict | Mapping):
        for key, item in value.items():
            if isinstance(key, str) and (reason := unstorable(key)) is not None:
                yield (*loc, key), reason
            yield from unstorable_in(item, (*loc, key))
    elif isinstance(value, list | tuple) or (
        isinstance(value, Sequence) and not isinstance(value, bytes | bytearray)
    ):
        for index, item in enumerate(value):
            yield from unstorable_in(item, (*loc, index))


def refuse(found: Iterator[tuple[Loc, str]]) -> None:
    errors = [{"loc": loc, "msg": reason, "type": "value_error", "input": None} for loc, reason in found]
    if errors:
        raise RequestValidationError(errors)


def refuse_unstorable_parameters(request: Request) -> None:
    """The route's path parameters and the query parameters it declares (others are ignored, as
    FastAPI ignores them: they reach no query)."""
    refuse(unstorable_in(dict(request.path_params), ("path",)))
    route = request.scope.get("route")
    declared = {p.alias for p in route.dependant.query_params} if isinstance(route, APIRoute) else set()
    query = [(name, value) for name, value in request.query_params.multi_items() if name in declared]
    refuse(unstorable_in(dict(query), ("query",)))


def refuse_unstorable_body(body: Any) -> None:
    """A parsed request body (e.g. a command's `model_dump()`)."""
    refuse(unstorable_in(body, ("body",)))
