"""How an operation of v1 is retired (docs/CONTRACT.md B14): announced on every answer long
before it goes.

v1 only grows. Before an operation is removed (in a v2, beside which v1 keeps being served), it
is listed here. From then on every answer it gives carries

- `Deprecation: @<unix seconds>` (RFC 9745): since when it is deprecated;
- `Sunset: <HTTP-date>` (RFC 8594): after when it may stop answering, at least
  `MIN_NOTICE` later;
- `Link: <…>; rel="deprecation"` (RFC 9745 section 3): where its replacement is described;

and its operation in the OpenAPI document says `deprecated: true` (a test holds the two
together). Nothing is deprecated today: the tables are empty, and the mechanism is tested on an
app of its own (tests/unit/test_deprecation.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Government systems change on budget cycles: a year's notice at the least.
MIN_NOTICE = timedelta(days=365)


@dataclass(frozen=True)
class Deprecation:
    since: datetime
    sunset: datetime
    link: str

    def __post_init__(self) -> None:
        if self.since.tzinfo is None or self.sunset.tzinfo is None:
            raise ValueError("deprecation times need a time zone")
        if self.sunset - self.since < MIN_NOTICE:
            raise ValueError(f"a sunset needs at least {MIN_NOTICE.days} days' notice after its deprecation")

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [
            (b"deprecation", f"@{int(self.since.timestamp())}".encode()),
            (b"sunset", format_datetime(self.sunset.astimezone(UTC), usegmt=True).encode()),
            (b"link", f'<{self.link}>; rel="deprecation"; type="text/html"'.encode()),
        ]


# (method, path template) -> its deprecation, per service. Empty: nothing of v1 is deprecated.
DEPRECATIONS: dict[str, dict[tuple[str, str], Deprecation]] = {"registry": {}, "projections": {}}


class DeprecationHeaders:
    """Adds a deprecated operation's headers to each of its answers, errors included (the route
    is known once the router matched it: `scope["route"]`)."""

    def __init__(self, app: ASGIApp, deprecations: Mapping[tuple[str, str], Deprecation]) -> None:
        self.app = app
        self.deprecations = dict(deprecations)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.deprecations:
            await self.app(scope, receive, send)
            return

        async def send_with_notice(message: Message) -> None:
            if message["type"] == "http.response.start":
                route = getattr(scope.get("route"), "path", None)
                found = self.deprecations.get((scope["method"], route)) if route else None
                if found is not None:
                    message["headers"] = [*message.get("headers", []), *found.headers()]
            await send(message)

        await self.app(scope, receive, send_with_notice)


def install_deprecations(app: FastAPI, deprecations: Mapping[tuple[str, str], Deprecation]) -> None:
    """Marks the operations `deprecated` in the OpenAPI document and adds their headers (nothing at
    all when none is deprecated: no middleware on every request for an empty table)."""
    if not deprecations:
        return
    routes = {
        (method, route.path): route
        for route in app.routes
        if isinstance(route, APIRoute)
        for method in route.methods or ()
    }
    unknown = sorted(set(deprecations) - set(routes))
    if unknown:
        raise ValueError(f"deprecations of operations the app does not have: {unknown}")
    for key in deprecations:
        routes[key].deprecated = True
    app.add_middleware(DeprecationHeaders, deprecations=deprecations)
