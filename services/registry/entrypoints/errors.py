"""How the registry's refusals are written: RFC 9457 problems (services/common/problems.py)."""

from __future__ import annotations

from coordreg_contracts.changes import CHANGE_OPS
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from services.common import problems
from services.common.problems import problem
from services.registry.domain.errors import DomainError
from services.registry.refusals import refusal_status_and_body, retry_after
from services.registry.service_layer.binding import PartyNotHeld
from services.registry.service_layer.idempotency import KeyInFlight, KeyReused


class BadIfMatch(Exception):
    """If-Match that is not a quoted version number (HTTP 400)."""

    def __init__(self, value: str) -> None:
        super().__init__(value)
        self.value = value


def domain_problem(exc: DomainError) -> JSONResponse:
    status, body = refusal_status_and_body(exc)
    wait = retry_after(body)
    headers = {"Retry-After": wait} if wait is not None else None
    return JSONResponse(body, status_code=status, media_type=problems.PROBLEM_JSON, headers=headers)


def install_errors(app: FastAPI) -> None:
    problems.install(app, CHANGE_OPS)

    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        return domain_problem(exc)

    @app.exception_handler(PartyNotHeld)
    async def _party_not_held(request: Request, exc: PartyNotHeld) -> JSONResponse:
        return problem(403, exc.detail, kind="party-not-held")

    @app.exception_handler(BadIfMatch)
    async def _bad_if_match(request: Request, exc: BadIfMatch) -> JSONResponse:
        return problem(
            400,
            f'If-Match must be a version in quotes, like "3" (got {exc.value!r})',
            errors=[{"loc": ["header", "if-match"], "msg": "not a version"}],
        )

    @app.exception_handler(KeyInFlight)
    async def _in_flight(request: Request, exc: KeyInFlight) -> JSONResponse:
        return problem(
            409,
            "a request with this Idempotency-Key is still being processed; retry later",
            kind="idempotency-key-in-flight",
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(KeyReused)
    async def _reused(request: Request, exc: KeyReused) -> JSONResponse:
        return problem(
            422,
            "this Idempotency-Key was already used with a different request",
            kind="idempotency-key-reused",
            errors=[{"loc": ["header", "idempotency-key"], "msg": "already used with a different request"}],
        )
