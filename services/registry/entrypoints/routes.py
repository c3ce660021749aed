"""The registry's HTTP API (docs/CONTRACT.md, command side). Routes are thin: parse, hand on, answer.

Each command route builds the command and its context and calls `bus.handle`; the command bus
(services/registry/service_layer/bus.py) owns the rest: Idempotency-Key, party binding, the
decision and the append. Every route needs a bearer token with its scope
(`services.common.auth`); the token's `sub` is the event's `actor` and the scope of
Idempotency-Key records.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from typing import Annotated, Any

from coordreg_contracts.commands import AmendAgreement, CloseTerm, Command, ReportProgress, SignAgreement
from coordreg_contracts.envelope import canonical_json
from coordreg_contracts.parties import (
    PartyCommand,
    RecordSuccession,
    RegisterParty,
    RenameParty,
    party_subject,
)
from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from services.common import auth, paging, problems
from services.common.auth import Client
from services.common.auth.dependencies import require
from services.common.patterns import SLUG, VERSION, full_match
from services.common.problems import documented_errors
from services.common.text_input import refuse_unstorable_body
from services.registry.bootstrap import Registry
from services.registry.domain.errors import NotFound
from services.registry.entrypoints.errors import BadIfMatch
from services.registry.entrypoints.views import agreement_view, party_view
from services.registry.service_layer.binding import Caller
from services.registry.service_layer.bus import (
    CommandContext,
    CommandResult,
    IdempotentRequest,
    PartyResult,
    Reply,
)
from services.registry.service_layer.idempotency import MAX_KEY_LENGTH
from services.registry.service_layer.repository import event_page, stream_exists

router = APIRouter(prefix="/v1")


async def registry_of(request: Request) -> Registry:
    # async: FastAPI runs a plain `def` dependency in its thread pool, a thread hand-off per
    # request that the registry's flame graph showed at a tenth of its CPU.
    registry: Registry = request.app.state.registry
    return registry


RegistryDep = Annotated[Registry, Depends(registry_of)]
AgreementId = Annotated[str, Path(min_length=1, max_length=64)]
Signer = Annotated[Client, Depends(require(auth.SIGN))]
Amender = Annotated[Client, Depends(require(auth.AMEND))]
Reporter = Annotated[Client, Depends(require(auth.REPORT))]
Closer = Annotated[Client, Depends(require(auth.CLOSE))]
Administrator = Annotated[Client, Depends(require(auth.ADMINISTER))]
PartyId = Annotated[str, Path(pattern=SLUG)]
Reader = Depends(require(auth.READ))
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=MAX_KEY_LENGTH,
        description="Same key and body: the first response again, without a new event.",
    ),
]
IfMatch = Annotated[str | None, Header(alias="If-Match", max_length=40)]
# Every status each operation can answer (tests/unit/test_openapi_documents.py derives them).
_COMMAND_TEXT = {
    400: "Bad request: a body that cannot be decoded, or (amendments) an If-Match that is not a version",
    503: "The database is unavailable; see Retry-After. The command may have been recorded: "
    "retry with the same Idempotency-Key",
}
SIGN_ERRORS = documented_errors(400, 401, 403, 409, 413, 422, 429, 503, described=_COMMAND_TEXT)
AMEND_ERRORS = documented_errors(400, 401, 403, 404, 409, 412, 413, 422, 429, 503, described=_COMMAND_TEXT)
COMMAND_ERRORS = documented_errors(400, 401, 403, 404, 409, 413, 422, 429, 503, described=_COMMAND_TEXT)
READ_ERRORS = documented_errors(401, 403, 404, 413, 422, 429, 503)
EVENTS_ERRORS = documented_errors(
    400,
    401,
    403,
    404,
    413,
    422,
    429,
    503,
    described={400: "Bad request: `cursor` is not a value returned as `next_cursor`"},
)
# A stream's pages (docs/CONTRACT.md B7): a client that sends no `limit` gets as many events as a
# page can hold, so one that predates paging still gets a whole stream of up to that many.
MAX_EVENTS_PAGE = 500
_SEQUENCE_CURSOR = re.compile(r"[0-9]{1,10}")  # fullmatch: a sequence, no trailing newline
MAX_SEQUENCE = 2**31 - 1  # registry.events.sequence is a PostgreSQL integer
EventsLimit = Annotated[
    int,
    Query(
        ge=1,
        le=MAX_EVENTS_PAGE,
        description="At most this many events (the page may hold fewer: its bytes are bounded too)",
    ),
]
EventsCursor = Annotated[
    str | None, Query(max_length=40, description="`next_cursor` of the previous page; none for the first")
]


def parse_if_match(value: str | None) -> int | None:
    if value is None:
        return None
    text = value.strip().removeprefix("W/").strip('"')
    if not full_match(VERSION, text):  # ASCII digits: str.isdigit() also takes "²", which int() refuses
        raise BadIfMatch(value)
    return int(text)


def fingerprint(method: str, path: str, if_match: str | None, body: Any) -> str:
    """What makes two requests "the same request" for an Idempotency-Key."""
    digest = hashlib.sha256()
    digest.update(f"{method} {path} {if_match or ''}\n".encode())
    digest.update(canonical_json(body))
    return digest.hexdigest()


async def command_context(
    request: Request,
    client: Client,
    command: Command | PartyCommand,
    status_code: int,
    key: str | None,
    if_match: str | None,
) -> CommandContext:
    refuse_unstorable_body(command.model_dump())
    idempotency = None
    if key is not None:
        body = json.loads(await request.body())
        idempotency = IdempotentRequest(
            key, fingerprint(request.method, request.url.path, if_match, body), status_code
        )
    return CommandContext(
        caller=Caller(client.client_id, client.party_ids),
        correlation_id=getattr(request.state, "correlation_id", str(uuid.uuid4())),
        causation_id=str(uuid.uuid4()),
        expected_version=parse_if_match(if_match),
        idempotency=idempotency,
    )


def reply_response(reply: Reply, status_code: int, command: Command | PartyCommand) -> JSONResponse:
    location = isinstance(command, SignAgreement | RegisterParty)
    if isinstance(reply, CommandResult | PartyResult):
        return _result_response(reply.body(), status_code, location)
    stored = reply.response
    if stored.status_code >= 400:
        return JSONResponse(
            dict(stored.body),
            status_code=stored.status_code,
            media_type=problems.PROBLEM_JSON,
            headers={"Idempotent-Replayed": "true"},
        )
    response = _result_response(dict(stored.body), stored.status_code, location)
    response.headers["Idempotent-Replayed"] = "true"
    return response


def _result_response(body: dict[str, Any], status_code: int, location: bool) -> JSONResponse:
    headers = {"ETag": f'"{body["version"]}"'}
    if location and "agreement_id" in body:
        headers["Location"] = f"/v1/agreements/{body['agreement_id']}"
    elif location:
        headers["Location"] = f"/v1/parties/{body['party_id']}"
    return JSONResponse(body, status_code=status_code, headers=headers)


@router.post("/agreements", status_code=201, summary="Sign an agreement", responses=SIGN_ERRORS)
async def sign(
    body: SignAgreement, request: Request, registry: RegistryDep, client: Signer, key: IdempotencyKey = None
) -> JSONResponse:
    context = await command_context(request, client, body, 201, key, None)
    return reply_response(await registry.bus.handle(body, context, registry.bus.new_stream_id()), 201, body)


@router.post("/agreements/{agreement_id}/amendments", summary="Amend an agreement", responses=AMEND_ERRORS)
async def amend(
    agreement_id: AgreementId,
    body: AmendAgreement,
    request: Request,
    registry: RegistryDep,
    client: Amender,
    key: IdempotencyKey = None,
    if_match: IfMatch = None,
) -> JSONResponse:
    context = await command_context(request, client, body, 200, key, if_match)
    return reply_response(await registry.bus.handle(body, context, agreement_id), 200, body)


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
    registry: RegistryDep,
    client: Reporter,
    key: IdempotencyKey = None,
) -> JSONResponse:
    context = await command_context(request, client, body, 201, key, None)
    return reply_response(await registry.bus.handle(body, context, agreement_id), 201, body)


@router.post(
    "/agreements/{agreement_id}/close", summary="Close an agreement's term", responses=COMMAND_ERRORS
)
async def close(
    agreement_id: AgreementId,
    body: CloseTerm,
    request: Request,
    registry: RegistryDep,
    client: Closer,
    key: IdempotencyKey = None,
) -> JSONResponse:
    context = await command_context(request, client, body, 200, key, None)
    return reply_response(await registry.bus.handle(body, context, agreement_id), 200, body)


@router.get(
    "/agreements/{agreement_id}",
    summary="Current state, from the event store",
    dependencies=[Reader],
    responses=READ_ERRORS,
)
async def get_agreement(agreement_id: AgreementId, registry: RegistryDep) -> Response:
    loaded = await registry.agreements.get(agreement_id)
    if loaded.state is None:
        raise NotFound(f"no agreement {agreement_id!r}")
    return JSONResponse(agreement_view(loaded.state), headers={"ETag": f'"{loaded.state.version}"'})


@router.get(
    "/agreements/{agreement_id}/events",
    summary="The agreement's events, in sequence order",
    dependencies=[Reader],
    responses=EVENTS_ERRORS,
)
async def get_events(
    agreement_id: AgreementId,
    request: Request,
    registry: RegistryDep,
    limit: EventsLimit = MAX_EVENTS_PAGE,
    cursor: EventsCursor = None,
) -> Response:
    return await events_page(request, registry, agreement_id, limit, cursor, f"no agreement {agreement_id!r}")


# --- the party directory (decisions 15-18) ------------------------------------------------------
DIRECTORY_ERRORS = documented_errors(400, 401, 403, 409, 413, 422, 429, 503, described=_COMMAND_TEXT)
PARTY_ERRORS = documented_errors(400, 401, 403, 404, 409, 413, 422, 429, 503, described=_COMMAND_TEXT)


@router.post(
    "/parties", status_code=201, summary="Register a party in the directory", responses=DIRECTORY_ERRORS
)
async def register_party(
    body: RegisterParty,
    request: Request,
    registry: RegistryDep,
    client: Administrator,
    key: IdempotencyKey = None,
) -> JSONResponse:
    context = await command_context(request, client, body, 201, key, None)
    return reply_response(await registry.bus.handle(body, context, party_subject(body.party_id)), 201, body)


@router.post("/parties/{party_id}/rename", summary="Rename a party", responses=PARTY_ERRORS)
async def rename_party(
    party_id: PartyId,
    body: RenameParty,
    request: Request,
    registry: RegistryDep,
    client: Administrator,
    key: IdempotencyKey = None,
) -> JSONResponse:
    context = await command_context(request, client, body, 200, key, None)
    return reply_response(await registry.bus.handle(body, context, party_subject(party_id)), 200, body)


@router.post(
    "/parties/{party_id}/succession",
    summary="Record that a party ceased and who took over its functions",
    responses=PARTY_ERRORS,
)
async def record_succession(
    party_id: PartyId,
    body: RecordSuccession,
    request: Request,
    registry: RegistryDep,
    client: Administrator,
    key: IdempotencyKey = None,
) -> JSONResponse:
    context = await command_context(request, client, body, 200, key, None)
    return reply_response(await registry.bus.handle(body, context, party_subject(party_id)), 200, body)


@router.get(
    "/parties/{party_id}",
    summary="A party's directory entry, from the event store",
    dependencies=[Reader],
    responses=READ_ERRORS,
)
async def get_party(party_id: PartyId, registry: RegistryDep) -> Response:
    loaded = await registry.parties.get(party_id)
    if loaded.state is None:
        raise NotFound(f"no party {party_id!r} in the directory")
    pending = await registry.store.succession_pending(party_id)
    return JSONResponse(
        party_view(loaded.state, transfers_pending=pending),
        headers={"ETag": f'"{loaded.state.version}"'},
    )


@router.get(
    "/parties/{party_id}/events",
    summary="The party's directory events, in sequence order",
    dependencies=[Reader],
    responses=EVENTS_ERRORS,
)
async def get_party_events(
    party_id: PartyId,
    request: Request,
    registry: RegistryDep,
    limit: EventsLimit = MAX_EVENTS_PAGE,
    cursor: EventsCursor = None,
) -> Response:
    missing = f"no party {party_id!r} in the directory"
    return await events_page(request, registry, party_subject(party_id), limit, cursor, missing)


def decode_sequence_cursor(cursor: str | None) -> int:
    if cursor is None:
        return 0
    if _SEQUENCE_CURSOR.fullmatch(cursor) is None or int(cursor) > MAX_SEQUENCE:
        raise HTTPException(400, "cursor must be a value returned as next_cursor")
    return int(cursor)


async def events_page(
    request: Request, registry: Registry, stream_id: str, limit: int, cursor: str | None, missing: str
) -> Response:
    """`{"events": [...], "next_cursor"}`: a page of the stream in sequence order, at most `limit`
    events and `max_page_bytes` of them (the first always), `next_cursor` the last one's sequence
    while more may follow."""
    after = decode_sequence_cursor(cursor)
    budget: int = request.app.state.max_page_bytes
    page = await event_page(registry.store, stream_id, after, limit, budget)
    if not page.events and (after == 0 or not await stream_exists(registry.store, stream_id)):
        raise NotFound(missing)
    rendered = (paging.render(stored.envelope().to_json()) for stored in page.events)
    taken, cut = paging.within_bytes(rendered, budget)
    more = cut or page.more
    next_cursor = str(page.events[len(taken) - 1].sequence) if more and taken else None
    return paging.json_with_list({"next_cursor": next_cursor}, "events", taken)
