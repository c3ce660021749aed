"""The registry's HTTP API (CONTRACT.md, command side). Routes are thin: build a command, hand it on.

Every route needs a bearer token with its scope (`services.common.auth`); the commands also
check that the client acts for the right party (CONTRACT.md, "Clients"):

- sign: the client holds the new agreement's lead party;
- amend, close: the client holds one of the agreement's *current* parties (as of the
  state the command is decided on: a party added by an amendment may amend, a removed
  one no longer may);
- report progress: the client holds the reporting `party_id` (that this party leads or
  supports the obligation is a domain rule, 422).
The token's `sub` is the event's `actor` and the scope of Idempotency-Key records.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import replace
from typing import Annotated, Any

from coordreg_contracts.changes import CHANGE_OPS
from coordreg_contracts.commands import AmendAgreement, CloseTerm, Command, ReportProgress, SignAgreement
from coordreg_contracts.common import Role
from fastapi import APIRouter, Depends, FastAPI, Header, Path, Request, Response
from fastapi.responses import JSONResponse

from services.common import auth, problems
from services.common.auth import Client, Forbidden, documented_errors
from services.common.problems import problem
from services.projections.readmodel.document import state_to_json
from services.registry.adapters.postgres_idempotency import (
    MAX_KEY_LENGTH,
    ClaimLost,
    IdempotencyStore,
    KeyInFlight,
    KeyReused,
    StoredResponse,
    fingerprint,
)
from services.registry.domain.errors import Conflict, DomainError, NotFound, PreconditionFailed, Rejected
from services.registry.service_layer.handlers import CommandContext, CommandHandler

router = APIRouter(prefix="/v1")
_VERSION = re.compile(r"^[0-9]{1,18}$")


def handler_of(request: Request) -> CommandHandler:
    handler: CommandHandler = request.app.state.handler
    return handler


Handler = Annotated[CommandHandler, Depends(handler_of)]
AgreementId = Annotated[str, Path(min_length=1, max_length=64)]
Signer = Annotated[Client, Depends(auth.require(auth.SIGN))]
Amender = Annotated[Client, Depends(auth.require(auth.AMEND))]
Reporter = Annotated[Client, Depends(auth.require(auth.REPORT))]
Closer = Annotated[Client, Depends(auth.require(auth.CLOSE))]
Reader = Depends(auth.require(auth.READ))
COMMAND_ERRORS = documented_errors(400, 401, 403, 404, 409, 412, 413, 422, 429)
READ_ERRORS = documented_errors(401, 403, 404, 422, 429)


def parse_if_match(value: str | None) -> int | None:
    if value is None:
        return None
    text = value.strip().removeprefix("W/").strip('"')
    if not _VERSION.match(text):  # ASCII digits: str.isdigit() also takes "²", which int() refuses
        raise BadIfMatch(value)
    return int(text)


class BadIfMatch(Exception):
    """If-Match that is not a quoted version number (HTTP 400)."""

    def __init__(self, value: str) -> None:
        super().__init__(value)
        self.value = value


def context(request: Request, client: Client, expected_version: int | None = None) -> CommandContext:
    return CommandContext(
        actor=client.client_id,
        correlation_id=getattr(request.state, "correlation_id", str(uuid.uuid4())),
        causation_id=str(uuid.uuid4()),
        expected_version=expected_version,
    )


def result_response(body: dict[str, Any], status_code: int, location: bool = False) -> JSONResponse:
    headers = {"ETag": f'"{body["version"]}"'}
    if location:
        headers["Location"] = f"/v1/agreements/{body['agreement_id']}"
    return JSONResponse(body, status_code=status_code, headers=headers)


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=MAX_KEY_LENGTH,
        description="Same key and body: the first response again, without a new event.",
    ),
]


async def run_command(
    request: Request,
    handler: CommandHandler,
    command: Command,
    status_code: int,
    *,
    client: Client,
    key: str | None,
    agreement_id: str | None = None,
    if_match: str | None = None,
) -> JSONResponse:
    """Hands the command to the handler, behind its Idempotency-Key when there is one."""
    ctx = context(request, client, parse_if_match(if_match))
    location = isinstance(command, SignAgreement)
    if key is None:
        result = await handler.handle(command, ctx, agreement_id)
        return result_response(result.body(), status_code, location)
    keys: IdempotencyStore = request.app.state.idempotency
    body = json.loads(await request.body())
    claim = await keys.begin(ctx.actor, key, fingerprint(request.method, request.url.path, if_match, body))
    if isinstance(claim, StoredResponse):
        if claim.status_code >= 400:
            return JSONResponse(
                claim.body,
                status_code=claim.status_code,
                media_type=problems.PROBLEM_JSON,
                headers={"Idempotent-Replayed": "true"},
            )
        response = result_response(claim.body, claim.status_code, location)
        response.headers["Idempotent-Replayed"] = "true"
        return response
    try:
        result = await handler.handle(command, ctx, agreement_id, replace(claim, status_code=status_code))
    except DomainError as exc:
        refusal = domain_problem(exc)
        await keys.finish_refusal(claim, refusal.status_code, json.loads(bytes(refusal.body)))
        return refusal
    except ClaimLost:
        raise KeyInFlight(key) from None
    except BaseException:
        await keys.abandon(claim)
        raise
    return result_response(result.body(), status_code, location)


def authorize_signing(client: Client, command: SignAgreement) -> None:
    """The client must hold the new agreement's lead party. Without exactly one lead the
    signing breaks a rule (422 from the domain): then holding a lead, or any party when
    none is named lead (or no party at all), lets the caller hear which rule."""
    leads = [p.party_id for p in command.parties if p.role == Role.LEAD]
    if len(leads) == 1 and not client.holds(leads[0]):
        raise Forbidden(
            f"this client does not act for {leads[0]!r}, the lead party of the agreement",
            kind="party-not-held",
        )
    if command.parties and not client.holds_any(leads or [p.party_id for p in command.parties]):
        raise Forbidden("this client acts for none of the agreement's lead parties", kind="party-not-held")


async def authorize_as_party(client: Client, handler: CommandHandler, agreement_id: str) -> None:
    """The client must hold one of the agreement's current parties (404 for no agreement)."""
    loaded = await handler.load(agreement_id)
    if loaded.state is None:
        raise NotFound(f"no agreement {agreement_id!r}")
    if not client.holds_any(loaded.state.parties):
        raise Forbidden(
            f"this client acts for none of the parties of agreement {agreement_id!r}", kind="party-not-held"
        )


def authorize_report(client: Client, command: ReportProgress) -> None:
    if not client.holds(command.party_id):
        raise Forbidden(f"this client does not act for {command.party_id!r}", kind="party-not-held")


@router.post("/agreements", status_code=201, summary="Sign an agreement", responses=COMMAND_ERRORS)
async def sign(
    body: SignAgreement, request: Request, handler: Handler, client: Signer, key: IdempotencyKey = None
) -> JSONResponse:
    authorize_signing(client, body)
    return await run_command(request, handler, body, 201, client=client, key=key)


@router.post("/agreements/{agreement_id}/amendments", summary="Amend an agreement", responses=COMMAND_ERRORS)
async def amend(
    agreement_id: AgreementId,
    body: AmendAgreement,
    request: Request,
    handler: Handler,
    client: Amender,
    key: IdempotencyKey = None,
    if_match: Annotated[str | None, Header(alias="If-Match", max_length=40)] = None,
) -> JSONResponse:
    await authorize_as_party(client, handler, agreement_id)
    return await run_command(
        request, handler, body, 200, client=client, key=key, agreement_id=agreement_id, if_match=if_match
    )


@router.post(
    "/agreements/{agreement_id}/progress-reports",
    status_code=201,
    summary="Report progress",
    responses=COMMAND_ERRORS,
)
async def report(
    agreement_id: AgreementId,
    body: ReportProgress,
    request: Request,
    handler: Handler,
    client: Reporter,
    key: IdempotencyKey = None,
) -> JSONResponse:
    authorize_report(client, body)
    return await run_command(request, handler, body, 201, client=client, key=key, agreement_id=agreement_id)


@router.post(
    "/agreements/{agreement_id}/close", summary="Close an agreement's term", responses=COMMAND_ERRORS
)
async def close(
    agreement_id: AgreementId,
    body: CloseTerm,
    request: Request,
    handler: Handler,
    client: Closer,
    key: IdempotencyKey = None,
) -> JSONResponse:
    await authorize_as_party(client, handler, agreement_id)
    return await run_command(request, handler, body, 200, client=client, key=key, agreement_id=agreement_id)


@router.get(
    "/agreements/{agreement_id}",
    summary="Current state, from the event store",
    dependencies=[Reader],
    responses=READ_ERRORS,
)
async def get_agreement(agreement_id: AgreementId, handler: Handler) -> Response:
    loaded = await handler.load(agreement_id)
    if loaded.state is None:
        raise NotFound(f"no agreement {agreement_id!r}")
    return JSONResponse(state_to_json(loaded.state), headers={"ETag": f'"{loaded.state.version}"'})


@router.get(
    "/agreements/{agreement_id}/events",
    summary="The agreement's events, in sequence order",
    dependencies=[Reader],
    responses=READ_ERRORS,
)
async def get_events(agreement_id: AgreementId, handler: Handler) -> dict[str, Any]:
    envelopes = await handler.envelopes(agreement_id)
    return {"events": [e.to_json() for e in envelopes]}


def domain_problem(exc: DomainError) -> JSONResponse:
    if isinstance(exc, Rejected):
        errors = [{"loc": ["body", *v.loc], "msg": v.msg} for v in exc.violations]
        return problem(422, exc.detail, kind="rule-violated", errors=errors)
    status = {NotFound: 404, Conflict: 409, PreconditionFailed: 412}.get(type(exc), 409)
    extensions = None
    if isinstance(exc, Conflict) and exc.existing_agreement_id:
        # RFC 9457 extension member: lets a caller retrying a signing find its agreement.
        extensions = {"existing_agreement_id": exc.existing_agreement_id}
    return problem(status, exc.detail, extensions=extensions)


def install_errors(app: FastAPI) -> None:
    problems.install(app, CHANGE_OPS)

    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        return domain_problem(exc)

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
