"""The registry's HTTP API (docs/CONTRACT.md, command side). A route is parse, hand on, answer.

Each command route has one declaration, a `CommandRoute`: the command it reads, its OpenAPI
operation (id, tag, answer model, errors) and its answer (status, `Location` template; the
`ETag` is the stream's version). Its body is read once, before the token is checked, by the
dependency the declaration gives (services/registry/entrypoints/bodies.py); the route then calls
`bus.handle` with the command and its context. The command bus
(services/registry/service_layer/bus.py) owns the rest: Idempotency-Key, party binding, the
decision and the append. Every route needs a bearer token with its scope
(`services.common.auth`); the token's `sub` is the event's `actor` and the scope of
Idempotency-Key records. Answers are response models (views.py) written by pydantic-core.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

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
from pydantic import BaseModel

from services.common import auth, paging, problems
from services.common.auth import Client
from services.common.auth.dependencies import require
from services.common.patterns import SLUG, VERSION, full_match
from services.common.problems import documented_errors
from services.registry.bootstrap import Registry
from services.registry.domain.errors import NotFound
from services.registry.entrypoints.bodies import CommandBody, command_body
from services.registry.entrypoints.errors import BadIfMatch
from services.registry.entrypoints.views import (
    Agreement,
    AgreementCommandResult,
    DirectoryEntry,
    EventPage,
    PartyCommandResult,
    agreement_view,
    party_view,
)
from services.registry.service_layer.binding import Caller
from services.registry.service_layer.bus import CommandContext, IdempotentRequest, Replayed, Reply
from services.registry.service_layer.idempotency import MAX_KEY_LENGTH, StoredResponse
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
    """What makes two requests "the same request" for an Idempotency-Key: the hash of the JSON
    value the client sent (not of the command it validates to)."""
    digest = hashlib.sha256()
    digest.update(f"{method} {path} {if_match or ''}\n".encode())
    digest.update(canonical_json(body))
    return digest.hexdigest()


C = TypeVar("C", bound=Command | PartyCommand)
CommandAnswer = type[AgreementCommandResult] | type[PartyCommandResult]


@dataclass(frozen=True)
class CommandRoute(Generic[C]):
    """A command route's one declaration: what it reads, how it appears in the OpenAPI document,
    and how it answers: `status`, and `Location` (a template on the answer's fields) when it
    creates a stream. Every command answer carries the stream's version as its `ETag`."""

    command: type[C]
    operation_id: str
    summary: str
    tag: str
    status: int
    answer: CommandAnswer
    errors: dict[int | str, dict[str, Any]]
    location: str | None = None

    def openapi(self) -> dict[str, Any]:
        """The path operation's arguments: the decorator states nothing of its own."""
        body = {"$ref": f"#/components/schemas/{self.command.__name__}"}
        return {
            "status_code": self.status,
            "summary": self.summary,
            "operation_id": self.operation_id,
            "tags": [self.tag],
            "response_model": self.answer,
            "responses": self.errors,
            "openapi_extra": {
                "requestBody": {"required": True, "content": {"application/json": {"schema": body}}}
            },
        }

    def body(self) -> Any:
        """The route's first parameter: the body, read and parsed before the token is checked."""
        return Depends(command_body(self.command))

    def headers(self, answer: Mapping[str, Any]) -> dict[str, str]:
        headers = {"ETag": f'"{answer["version"]}"'}
        if self.location is not None:
            headers["Location"] = self.location.format_map(answer)
        return headers

    def respond(self, reply: Reply) -> Response:
        if isinstance(reply, Replayed):
            return self._replayed(reply.response)
        fields = reply.body()
        return json_answer(self.answer.model_construct(**fields), self.status, self.headers(fields))

    def _replayed(self, stored: StoredResponse) -> Response:
        """The first request's answer again, as it was recorded (its members in their stored order)."""
        body = dict(stored.body)
        if stored.status_code >= 400:
            media_type, headers = problems.PROBLEM_JSON, {}
        else:
            media_type, headers = "application/json", self.headers(body)
        headers["Idempotent-Replayed"] = "true"
        return Response(paging.render(body), stored.status_code, headers, media_type)

    async def handle(
        self,
        body: CommandBody[C],
        request: Request,
        client: Client,
        key: str | None,
        stream_id: str | Callable[[C], str] | None = None,
        if_match: str | None = None,
    ) -> Response:
        """Parse, hand on, answer: the command acts on `stream_id` (a stream it names itself when
        callable, a new one when None)."""
        # The registry from the app, not a dependency: FastAPI solves each one again per request.
        registry: Registry = request.app.state.registry
        command = body.valid()
        idempotency = None
        if key is not None:
            method, path = request.method, request.url.path
            idempotency = IdempotentRequest(key, fingerprint(method, path, if_match, body.value), self.status)
        correlation_id = getattr(request.state, "correlation_id", None)
        context = CommandContext(
            caller=Caller(client.client_id, client.party_ids),
            correlation_id=correlation_id if correlation_id is not None else str(uuid.uuid4()),
            causation_id=str(uuid.uuid4()),
            expected_version=parse_if_match(if_match),
            idempotency=idempotency,
        )
        if stream_id is None:
            stream = registry.bus.new_stream_id()
        else:
            stream = stream_id(command) if callable(stream_id) else stream_id
        return self.respond(await registry.bus.handle(command, context, stream))


def _party_stream(command: RegisterParty) -> str:
    """A party's registration names its stream in the body."""
    return party_subject(command.party_id)


def json_answer(model: BaseModel, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """A response model written by pydantic-core, as `JSONResponse` wrote its dict before."""
    return Response(model.model_dump_json(), status, headers, "application/json")


SIGN = CommandRoute(
    SignAgreement,
    "signAgreement",
    "Sign an agreement",
    "agreements",
    201,
    AgreementCommandResult,
    SIGN_ERRORS,
    location="/v1/agreements/{agreement_id}",
)
AMEND = CommandRoute(
    AmendAgreement,
    "amendAgreement",
    "Amend an agreement",
    "agreements",
    200,
    AgreementCommandResult,
    AMEND_ERRORS,
)
REPORT = CommandRoute(
    ReportProgress,
    "reportProgress",
    "Report progress",
    "agreements",
    201,
    AgreementCommandResult,
    COMMAND_ERRORS,
)
CLOSE = CommandRoute(
    CloseTerm,
    "closeTerm",
    "Close an agreement's term",
    "agreements",
    200,
    AgreementCommandResult,
    COMMAND_ERRORS,
)


@router.post("/agreements", **SIGN.openapi())
async def sign(
    body: Annotated[CommandBody[SignAgreement], SIGN.body()],
    request: Request,
    client: Signer,
    key: IdempotencyKey = None,
) -> Response:
    return await SIGN.handle(body, request, client, key)


@router.post("/agreements/{agreement_id}/amendments", **AMEND.openapi())
async def amend(
    body: Annotated[CommandBody[AmendAgreement], AMEND.body()],
    agreement_id: AgreementId,
    request: Request,
    client: Amender,
    key: IdempotencyKey = None,
    if_match: IfMatch = None,
) -> Response:
    return await AMEND.handle(body, request, client, key, agreement_id, if_match)


@router.post("/agreements/{agreement_id}/progress-reports", **REPORT.openapi())
async def report(
    body: Annotated[CommandBody[ReportProgress], REPORT.body()],
    agreement_id: AgreementId,
    request: Request,
    client: Reporter,
    key: IdempotencyKey = None,
) -> Response:
    return await REPORT.handle(body, request, client, key, stream_id=agreement_id)


@router.post("/agreements/{agreement_id}/close", **CLOSE.openapi())
async def close(
    body: Annotated[CommandBody[CloseTerm], CLOSE.body()],
    agreement_id: AgreementId,
    request: Request,
    client: Closer,
    key: IdempotencyKey = None,
) -> Response:
    return await CLOSE.handle(body, request, client, key, stream_id=agreement_id)


@router.get(
    "/agreements/{agreement_id}",
    summary="Current state, from the event store",
    operation_id="getAgreement",
    tags=["agreements"],
    response_model=Agreement,
    dependencies=[Reader],
    responses=READ_ERRORS,
)
async def get_agreement(agreement_id: AgreementId, registry: RegistryDep) -> Response:
    loaded = await registry.agreements.get(agreement_id)
    if loaded.state is None:
        raise NotFound(f"no agreement {agreement_id!r}")
    return json_answer(agreement_view(loaded.state), headers={"ETag": f'"{loaded.state.version}"'})


@router.get(
    "/agreements/{agreement_id}/events",
    summary="The agreement's events, in sequence order",
    operation_id="listAgreementEvents",
    tags=["agreements"],
    response_model=EventPage,
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
REGISTER = CommandRoute(
    RegisterParty,
    "registerParty",
    "Register a party in the directory",
    "parties",
    201,
    PartyCommandResult,
    DIRECTORY_ERRORS,
    location="/v1/parties/{party_id}",
)
RENAME = CommandRoute(
    RenameParty, "renameParty", "Rename a party", "parties", 200, PartyCommandResult, PARTY_ERRORS
)
SUCCESSION = CommandRoute(
    RecordSuccession,
    "recordSuccession",
    "Record that a party ceased and who took over its functions",
    "parties",
    200,
    PartyCommandResult,
    PARTY_ERRORS,
)
# Every command route's declaration, by operation (and so the request bodies the document names).
COMMAND_ROUTES = (SIGN, AMEND, REPORT, CLOSE, REGISTER, RENAME, SUCCESSION)


@router.post("/parties", **REGISTER.openapi())
async def register_party(
    body: Annotated[CommandBody[RegisterParty], REGISTER.body()],
    request: Request,
    client: Administrator,
    key: IdempotencyKey = None,
) -> Response:
    return await REGISTER.handle(body, request, client, key, stream_id=_party_stream)


@router.post("/parties/{party_id}/rename", **RENAME.openapi())
async def rename_party(
    body: Annotated[CommandBody[RenameParty], RENAME.body()],
    party_id: PartyId,
    request: Request,
    client: Administrator,
    key: IdempotencyKey = None,
) -> Response:
    return await RENAME.handle(body, request, client, key, stream_id=party_subject(party_id))


@router.post("/parties/{party_id}/succession", **SUCCESSION.openapi())
async def record_succession(
    body: Annotated[CommandBody[RecordSuccession], SUCCESSION.body()],
    party_id: PartyId,
    request: Request,
    client: Administrator,
    key: IdempotencyKey = None,
) -> Response:
    return await SUCCESSION.handle(body, request, client, key, stream_id=party_subject(party_id))


@router.get(
    "/parties/{party_id}",
    summary="A party's directory entry, from the event store",
    operation_id="getParty",
    tags=["parties"],
    response_model=DirectoryEntry,
    dependencies=[Reader],
    responses=READ_ERRORS,
)
async def get_party(party_id: PartyId, registry: RegistryDep) -> Response:
    loaded = await registry.parties.get(party_id)
    if loaded.state is None:
        raise NotFound(f"no party {party_id!r} in the directory")
    pending = await registry.store.succession_pending(party_id)
    return json_answer(
        party_view(loaded.state, transfers_pending=pending), headers={"ETag": f'"{loaded.state.version}"'}
    )


@router.get(
    "/parties/{party_id}/events",
    summary="The party's directory events, in sequence order",
    operation_id="listPartyEvents",
    tags=["parties"],
    response_model=EventPage,
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
