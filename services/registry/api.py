"""The registry's HTTP API (CONTRACT.md, command side). Routes are thin: build a command, hand it on."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Request, Response
from fastapi.responses import JSONResponse

from schemas.commands import AmendAgreement, CloseTerm, ReportProgress, SignAgreement
from services.common import problems
from services.common.problems import problem
from services.registry.domain.errors import Conflict, DomainError, NotFound, PreconditionFailed, Rejected
from services.registry.domain.serialize import state_to_json
from services.registry.handler import CommandContext, CommandHandler, CommandResult

router = APIRouter(prefix="/v1")
ANONYMOUS_ACTOR = "anonymous"


def handler_of(request: Request) -> CommandHandler:
    handler: CommandHandler = request.app.state.handler
    return handler


Handler = Annotated[CommandHandler, Depends(handler_of)]


def parse_if_match(value: str | None) -> int | None:
    if value is None:
        return None
    text = value.strip().removeprefix("W/").strip('"')
    if not text.isdigit():
        raise BadIfMatch(value)
    return int(text)


class BadIfMatch(Exception):
    """If-Match that is not a quoted version number (HTTP 400)."""

    def __init__(self, value: str) -> None:
        super().__init__(value)
        self.value = value


def context(request: Request, expected_version: int | None = None) -> CommandContext:
    return CommandContext(
        actor=ANONYMOUS_ACTOR,
        correlation_id=getattr(request.state, "correlation_id", str(uuid.uuid4())),
        causation_id=str(uuid.uuid4()),
        expected_version=expected_version,
    )


def result_response(result: CommandResult, status_code: int, location: bool = False) -> JSONResponse:
    headers = {"ETag": f'"{result.version}"'}
    if location:
        headers["Location"] = f"/v1/agreements/{result.agreement_id}"
    return JSONResponse(result.body(), status_code=status_code, headers=headers)


@router.post("/agreements", status_code=201, summary="Sign an agreement")
async def sign(body: SignAgreement, request: Request, handler: Handler) -> JSONResponse:
    result = await handler.handle(body, context(request))
    return result_response(result, 201, location=True)


@router.post("/agreements/{agreement_id}/amendments", summary="Amend an agreement")
async def amend(
    agreement_id: str,
    body: AmendAgreement,
    request: Request,
    handler: Handler,
    if_match: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    result = await handler.handle(body, context(request, parse_if_match(if_match)), agreement_id)
    return result_response(result, 200)


@router.post("/agreements/{agreement_id}/progress-reports", status_code=201, summary="Report progress")
async def report(agreement_id: str, body: ReportProgress, request: Request, handler: Handler) -> JSONResponse:
    result = await handler.handle(body, context(request), agreement_id)
    return result_response(result, 201)


@router.post("/agreements/{agreement_id}/close", summary="Close an agreement's term")
async def close(agreement_id: str, body: CloseTerm, request: Request, handler: Handler) -> JSONResponse:
    result = await handler.handle(body, context(request), agreement_id)
    return result_response(result, 200)


@router.get("/agreements/{agreement_id}", summary="Current state, from the event store")
async def get_agreement(agreement_id: str, handler: Handler) -> Response:
    loaded = await handler.load(agreement_id)
    if loaded.state is None:
        raise NotFound(f"no agreement {agreement_id!r}")
    return JSONResponse(state_to_json(loaded.state), headers={"ETag": f'"{loaded.state.version}"'})


@router.get("/agreements/{agreement_id}/events", summary="The agreement's events, in sequence order")
async def get_events(agreement_id: str, handler: Handler) -> dict[str, Any]:
    envelopes = await handler.envelopes(agreement_id)
    return {"events": [e.to_json() for e in envelopes]}


def install_errors(app: FastAPI) -> None:
    problems.install(app)

    @app.exception_handler(Rejected)
    async def _rejected(request: Request, exc: Rejected) -> JSONResponse:
        errors = [{"loc": ["body", *v.loc], "msg": v.msg} for v in exc.violations]
        return problem(422, exc.detail, kind="rule-violated", errors=errors)

    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        status = {NotFound: 404, Conflict: 409, PreconditionFailed: 412}.get(type(exc), 409)
        extensions = None
        if isinstance(exc, Conflict) and exc.existing_agreement_id:
            # RFC 9457 extension member: lets a caller retrying a signing find its agreement.
            extensions = {"existing_agreement_id": exc.existing_agreement_id}
        return problem(status, exc.detail, extensions=extensions)

    @app.exception_handler(BadIfMatch)
    async def _bad_if_match(request: Request, exc: BadIfMatch) -> JSONResponse:
        return problem(
            400,
            f'If-Match must be a version in quotes, like "3" (got {exc.value!r})',
            errors=[{"loc": ["header", "if-match"], "msg": "not a version"}],
        )
