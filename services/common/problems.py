"""RFC 9457 problem details for both services: one shape for every error a caller can see."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
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
    body: dict[str, Any] = {
        "type": TYPE_BASE + (kind or TITLES.get(status, "error").lower().replace(" ", "-")),
        "title": title or TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = list(errors)
    body.update(extensions or {})
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


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
