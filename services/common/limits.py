"""Resource limits (OWASP API4): request body size and per-client request rate.

- `BodySizeLimit` (pure ASGI middleware) answers 413 problem+json when `Content-Length`
  announces more than the limit, and stops reading a body sent without one (chunked) as
  soon as it passes the limit.
- `RateLimiter` is a token bucket per client id (the token's `sub`): `rate` requests a
  second on average, bursts up to `burst`; past that, 429 with `Retry-After`. The buckets
  live in the process, so the limit holds **per instance**: N registry instances behind a
  load balancer let a client through at up to N × rate. Defaults are generous; lower them
  per deployment.

Text lengths, array lengths and page sizes are limited where they are declared (the
command models in `schemas/`, the query parameters' `le=500`).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.problems import problem

DEFAULT_MAX_BODY_BYTES = 256 * 1024


class RateLimited(Exception):
    def __init__(
        self, retry_after: float, detail: str = "this client sends more requests than this instance accepts"
    ) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after
        self.detail = detail


class RateLimiter:
    """Token buckets by key (client id), refilled continuously; thread-safe, in process."""

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 100_000,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a rate limit needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = float(burst)
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def try_take(self, key: str, cost: float = 1.0) -> float:
        """Takes `cost` tokens from the key's bucket: 0 when allowed, else seconds until it would be."""
        with self._lock:
            now = self.clock()
            tokens, at = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            if tokens >= cost:
                self._buckets[key] = (tokens - cost, now)
                if len(self._buckets) > self.max_keys:
                    self._forget_full(now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (cost - tokens) / self.rate

    def charge(self, key: str) -> None:
        """Takes one request from the key's bucket or raises RateLimited (HTTP 429)."""
        wait = self.try_take(key)
        if wait > 0:
            raise RateLimited(wait)

    def _forget_full(self, now: float) -> None:
        # A bucket that has refilled is the same as no bucket: drop those to bound memory.
        full = [k for k, (t, at) in self._buckets.items() if t + (now - at) * self.rate >= self.burst]
        for key in full:
            del self._buckets[key]


def rate_limiter(rate: float, burst: int) -> RateLimiter | None:
    """The configured limiter; `rate <= 0` turns rate limiting off."""
    return RateLimiter(rate, max(burst, 1)) if rate > 0 else None


class _BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")


class BodySizeLimit:
    """413 for request bodies over `max_bytes`, announced or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # FastAPI re-raises an HTTPException met while reading the body, and the
                    # service's handler writes it as problem+json.
                    raise _BodyTooLarge(self.max_bytes)
            return message

        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited, tracking)
        except _BodyTooLarge:
            if started:
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(
            413,
            f"the request body is larger than {self.max_bytes} bytes",
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def install(app: FastAPI, *, max_body_bytes: int) -> None:
    """The body limit (call before the outer middlewares) and the 429 problem."""
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)

    @app.exception_handler(RateLimited)
    async def _rate_limited(request: Request, exc: RateLimited) -> JSONResponse:
        seconds = max(1, math.ceil(exc.retry_after))
        return problem(
            429,
            f"{exc.detail}; retry in {seconds} s",
            kind="rate-limited",
            headers={"Retry-After": str(seconds)},
        )
