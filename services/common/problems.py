"""RFC 9457 problem details for both services: one shape for every error a caller can see.

`problem(...)` writes one; `install(app)` makes every error leave that way and puts the
`Problem` schema in the app's OpenAPI document; `documented_errors(...)` is how a route
lists, in OpenAPI, the problems it can answer with (and their Retry-After and
WWW-Authenticate headers).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"
UNAVAILABLE = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    # A connection whose server died mid-operation can be left in this state.
    asyncpg.InternalClientError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
)
TYPE_BASE = "https://coordination-registry.gov.vn/problems/"
log = structlog.get_logger(__name__)

TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    412: "Precondition failed",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Validation failed",
    428: "Precondition required",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


def problem(
    status: int,
    detail: str,
    *,
    kind: str | None = None,
    errors: Sequence[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
    title: str | None = None,
    extensions: dict[str, Any] | None = None,
) -> JSONResponse:
    body = problem_body(status, detail, kind=kind, errors=errors, title=title, extensions=extensions)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def problem_body(
    status: int,
    detail: str,
    *,
    kind: str | None = None,
    errors: Sequence[dict[str, Any]] | None = None,
    title: str | None = None,
    extensions: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The members of an RFC 9457 problem, in the order every answer writes them."""
    body: dict[str, Any] = {
        "type": TYPE_BASE + (kind or TITLES.get(status, "error").lower().replace(" ", "-")),
        "title": title or TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = list(errors)
    body.update(extensions or {})
    return body


def _field_path(loc: Sequence[Any], union_tags: frozenset[str]) -> list[Any]:
    """pydantic puts a discriminated union's tag in the path (changes.0.change_term.term);
    the caller's JSON has no such level, so it is dropped (changes.0.term)."""
    path: list[Any] = []
    for part in loc:
        if part in union_tags and path and isinstance(path[-1], int):
            continue
        path.append(part)
    return path


def _validation_errors(exc: RequestValidationError, union_tags: frozenset[str]) -> list[dict[str, Any]]:
    errors = []
    for error in exc.errors():
        msg = str(error.get("msg", "invalid"))
        # pydantic prefixes the messages of our own validators; the caller does not need that.
        msg = msg.removeprefix("Value error, ")
        loc = _field_path(error.get("loc", ()), union_tags)
        errors.append({"loc": loc, "msg": msg, "type": error.get("type")})
    return errors


def install(app: FastAPI, union_tags: frozenset[str] = frozenset()) -> None:
    """Every error leaves as problem+json, never as FastAPI's default shape."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = _validation_errors(exc, union_tags)
        detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors[:5])
        return problem(422, detail or "the request is not valid", kind="validation", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers) if exc.headers else None
        return problem(exc.status_code, str(exc.detail), headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, UNAVAILABLE):
            # The database is restarting or unreachable. The command may or may not have
            # committed if the connection dropped during COMMIT: retry with the same
            # Idempotency-Key to get exactly one effect.
            log.warning("database unavailable", path=request.url.path, error=repr(exc))
            return problem(
                503,
                "the database is unavailable; retry the request (with the same Idempotency-Key)",
                kind="unavailable",
                headers={"Retry-After": "1"},
            )
        log.exception("unhandled error", path=request.url.path)
        return problem(500, "an unexpected error occurred; nothing was recorded", kind="internal")

    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = original()
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            schemas["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


# ---------------------------------------------------------------- OpenAPI


class Problem(BaseModel):
    """RFC 9457 problem details, as every error of both services is written (documentation only)."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = None


ERROR_TEXT = {
    400: "Bad request: a malformed If-Match or cursor, or a body that cannot be decoded",
    401: "No token, or a token that is not valid; see WWW-Authenticate",
    403: "The token lacks the scope, or the client does not act for the party",
    404: "Not found",
    409: "Conflict with the agreement's state or another request",
    412: "If-Match names an older version",
    413: "Request body too large",
    422: "Validation failed; `errors` has the field paths",
    429: "Too many requests from this client; see Retry-After",
    503: "The database is unavailable; see Retry-After",
}
_RETRY_AFTER = {
    "description": "Seconds to wait before retrying.",
    "schema": {"type": "integer", "minimum": 1},
}
_CHALLENGE = {"description": "The Bearer challenge (RFC 6750).", "schema": {"type": "string"}}
# The headers each problem comes with: always, or only in some cases (required: false).
_HEADERS: dict[int, dict[str, dict[str, Any]]] = {
    401: {"WWW-Authenticate": {**_CHALLENGE, "required": True}},
    403: {"WWW-Authenticate": {**_CHALLENGE, "description": "When a scope is missing: which one."}},
    409: {
        "Retry-After": {
            **_RETRY_AFTER,
            "description": "When another request with this Idempotency-Key is still in flight.",
        }
    },
    429: {"Retry-After": {**_RETRY_AFTER, "required": True}},
    503: {"Retry-After": {**_RETRY_AFTER, "required": True}},
}


def documented_errors(
    *statuses: int, described: Mapping[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for a route's problem+json errors (FastAPI's default 422 shape is replaced).

    `described` gives a status a more precise description than `ERROR_TEXT`'s for this route.
    """
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        response: dict[str, Any] = {
            "description": (described or {}).get(status) or ERROR_TEXT[status],
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        if status in _HEADERS:
            response["headers"] = copy.deepcopy(_HEADERS[status])
        responses[status] = response
    return responses
