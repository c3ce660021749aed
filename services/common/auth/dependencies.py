"""The FastAPI side of authentication: `require(scope)` for routes, and `install` for the app.

`authenticate` verifies the bearer token with the app's verifier and charges the client's
rate-limit bucket (429 past it, `services.common.limits`); a token not already verified is
first refused 429 when its address has failed authentication too often, and a failure is
charged to the address (`services.common.auth.failures`); `require(scope)` adds the scope
check. `install` writes the refusals as problem+json: 401 with a `WWW-Authenticate: Bearer`
challenge, 403 (with `error="insufficient_scope"` when a scope is missing).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

import structlog
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import Counter

from services.common.auth import Client, Forbidden, Unauthenticated
from services.common.auth.failures import FailedAuthLimiter
from services.common.auth.verifier import TokenVerifier
from services.common.limits import RateLimited, RateLimiter
from services.common.problems import problem
from services.common.text_input import refuse_unstorable_parameters

BEARER_FORMAT = "JWT"
BEARER_DESCRIPTION = "A JWT from the identity provider: `sub` (client id), `scope`, `party_ids`."
bearer = HTTPBearer(
    auto_error=False, scheme_name="bearer", bearerFormat=BEARER_FORMAT, description=BEARER_DESCRIPTION
)
FAILURES_DETAIL = "too many failed authentications from this address"
THROTTLED = Counter(
    "auth_failures_throttled_total",
    "Requests answered 429 without a look at their token: their address failed authentication too often",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


async def authenticate(request: Request, credentials: Credentials) -> Client:
    """The verified caller, charged to its rate-limit bucket."""
    verifier: TokenVerifier = request.app.state.verifier
    failures: FailedAuthLimiter | None = getattr(request.app.state, "failed_auth_limiter", None)
    client = verifier.remembered(credentials.credentials) if credentials is not None else None
    if client is None:
        # Not known good: this request may cost a signature check, which an address that has
        # failed too often does not get (429, before anything of its token is read).
        address = failures.key_of(request) if failures is not None else ""
        if failures is not None and (wait := failures.wait(address)) > 0:
            THROTTLED.inc()
            raise RateLimited(wait, FAILURES_DETAIL)
        try:
            if credentials is None:
                raise Unauthenticated(
                    "this endpoint needs a bearer token (Authorization: Bearer <JWT>)", error=None
                )
            client = verifier.verify(credentials.credentials)
        except Unauthenticated:
            if failures is not None:
                failures.charge(address)
            raise
    limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    if limiter is not None:
        limiter.charge(client.client_id)
    request.state.client_id = client.client_id
    structlog.contextvars.bind_contextvars(client_id=client.client_id)
    return client


class BearerScope(HTTPBearer):
    """`require(scope)`: the bearer token read, verified and held to `scope`, in one dependency.

    It is the `bearer` scheme itself (same name, format and description in the OpenAPI document)
    rather than a dependency on it: FastAPI solves every dependency of a request again, and the
    three nested ones this replaces (scope -> authenticate -> bearer) were a fifth of the
    registry's CPU per command in bench/hot.py's profile."""

    def __init__(self, scope: str) -> None:
        super().__init__(
            auto_error=False,
            scheme_name=bearer.scheme_name,
            bearerFormat=BEARER_FORMAT,
            description=BEARER_DESCRIPTION,
        )
        self.scope = scope

    async def __call__(self, request: Request) -> Client:  # type: ignore[override]
        client = await authenticate(request, await super().__call__(request))
        if self.scope not in client.scopes:
            raise Forbidden(
                f"this client's token lacks the scope {self.scope!r}",
                scope=self.scope,
                kind="insufficient-scope",
            )
        # Once the caller is known and allowed: bad text in the URL is the caller's bad input.
        refuse_unstorable_parameters(request)
        return client


def require(scope: str) -> Callable[[Request], Awaitable[Client]]:
    """A dependency: the authenticated client, which must hold `scope` (else 403)."""
    return BearerScope(scope)


def install(
    app: FastAPI,
    verifier: TokenVerifier,
    limiter: RateLimiter | None,
    failures: FailedAuthLimiter | None = None,
) -> None:
    """Puts the verifier and the limiters on the app and writes auth errors as problem+json."""
    app.state.verifier = verifier
    app.state.rate_limiter = limiter
    app.state.failed_auth_limiter = failures

    @app.exception_handler(Unauthenticated)
    async def _unauthenticated(request: Request, exc: Unauthenticated) -> JSONResponse:
        challenge = 'Bearer realm="coordreg"'
        if exc.error:
            challenge += f', error="{exc.error}", error_description="{_quoted(exc.detail)}"'
        return problem(401, exc.detail, kind="unauthenticated", headers={"WWW-Authenticate": challenge})

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> JSONResponse:
        headers = None
        if exc.scope:
            headers = {
                "WWW-Authenticate": f'Bearer realm="coordreg", error="insufficient_scope", scope="{exc.scope}"'
            }
        return problem(403, exc.detail, kind=exc.kind, headers=headers)


def _quoted(text: str) -> str:
    return text.replace("\\", "").replace('"', "'")
