"""The projections' query API (docs/CONTRACT.md, query side). Eventually consistent; `min_position` waits.

Every query needs a bearer token with the `agreements:read` scope (`services.common.auth`).
Reads are not limited to the client's own parties: agreements are documents shared among
the government systems that sign and check them (docs/SECURITY.md, API1).
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import struct
import time
from typing import Annotated, Literal

import asyncpg
from coordreg_contracts.common import PERIOD_PATTERN
from coordreg_contracts.document_types import DocumentType
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from services.common import auth, problems
from services.common.auth.dependencies import require
from services.common.patterns import CURSOR, MAX_POSITION, RANKED_CURSOR, SLUG, full_match
from services.common.problems import documented_errors
from services.projections.entrypoints.answers import (
    AgreementDocument,
    AgreementList,
    OverdueReport,
    PartyEntry,
    PartyHistory,
    PartyObligations,
    ProjectionStatus,
    encoded,
)
from services.projections.readmodel import queries
from services.projections.settings import ProjectionSettings

# A search's cursor (decision 14): its last result's rank and signing position. Never digits
# alone, so a cursor of one kind of listing is refused by the other.
_RANK_ONE_BITS = 0x3F800000  # 1.0 as an IEEE 754 single
# The lists newly paged by their sort key (obligations, the overdue report): the cursor carries
# the last item's key (document number, ids), so it is longer than a position. A client that
# sends no `limit` gets as many as a page holds, as close as paging allows to the whole list it
# got before (docs/CONTRACT.md B7, ADR 0005).
MAX_KEYED_PAGE = 500
MAX_KEY_PART = 300  # a document number is at most 100 characters, an id 64
_KEY_CURSOR = re.compile(r"[A-Za-z0-9_-]{1,2048}")  # fullmatch: unpadded base64url
KeyedLimit = Annotated[int, Query(ge=1, le=MAX_KEYED_PAGE, description="At most this many items in the page")]
KeyedCursor = Annotated[
    str | None, Query(max_length=2048, description="`next_cursor` of the previous page; none for the first")
]
Q_DESCRIPTION = (
    "Words to look for in the document number and title, ignoring case and Vietnamese "
    "diacritics (`chuyen doi so` finds `Chuyển đổi số`). Every word must occur there, in any "
    "order, as a word or part of one; the best matches come first (pg_trgm's strict word "
    "similarity), ties in the order of signing. A search pages with its own cursors "
    "(contract decision 14)."
)
LOCALITY_DESCRIPTION = (
    "The locality as signed or as it is governed now (`locality_now`: the provinces of Resolution "
    "202/2025/QH15), ignoring case and Vietnamese diacritics: `Phú Thọ` finds the agreements "
    "signed in Hòa Bình, which is part of it now, and `Hòa Bình` still finds them."
)
OVERDUE_PARTY_DESCRIPTION = (
    "Only the obligations of the agreements this party is a current party of (as `party_id` of "
    "`GET /v1/agreements` reads it), whichever party leads them"
)
# What every query can answer: the token (401, 403, 429), the body limit on any request
# (413), the database (503). Each route adds its own below.
router = APIRouter(
    prefix="/v1",
    dependencies=[Depends(require(auth.READ))],
    responses=documented_errors(401, 403, 413, 429, 503),
)
# With `min_position`, 503 also means the wait ran out (NotYetApplied); 400 is a cursor not ours.
_DESCRIBED = {
    400: "Bad request: `cursor` is not a value returned as `next_cursor`",
    503: "The database is unavailable, or the read models have not applied `min_position` "
    "within the wait; see Retry-After",
}
# Any parameter can fail validation (422); a path parameter holding "/" matches no route (404).
BY_QUERY = documented_errors(422, 503, described=_DESCRIBED)
BY_PATH = documented_errors(404, 422, 503, described=_DESCRIBED)
PAGED = documented_errors(400, 422, 503, described=_DESCRIBED)
PAGED_BY_PATH = documented_errors(400, 404, 422, 503, described=_DESCRIBED)
PartyId = Annotated[str, Path(pattern=SLUG)]
Period = Annotated[str, Query(pattern=PERIOD_PATTERN, examples=["2024", "2024-Q3"])]


async def pool_of(request: Request) -> asyncpg.Pool:
    # async: a plain `def` dependency would run in FastAPI's thread pool on every request.
    pool: asyncpg.Pool = request.app.state.pool
    return pool


class NotYetApplied(Exception):
    def __init__(self, position: int) -> None:
        super().__init__(position)
        self.position = position


async def read_your_writes(
    request: Request, min_position: Annotated[int | None, Query(ge=1, le=MAX_POSITION)] = None
) -> None:
    """Waits until the projection has applied the event at `min_position` (503 after the wait)."""
    if min_position is None:
        return
    settings: ProjectionSettings = request.app.state.settings
    pool: asyncpg.Pool = request.app.state.pool
    deadline = time.monotonic() + settings.min_position_wait_seconds
    delay = 0.005
    while not await queries.has_applied(pool, min_position):
        if time.monotonic() >= deadline:
            raise NotYetApplied(min_position)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.1)


Pool = Annotated[asyncpg.Pool, Depends(pool_of)]
Consistent = Depends(read_your_writes)


def answer(model: BaseModel, headers: dict[str, str] | None = None) -> Response:
    """A response model written by pydantic-core (`encoded`), as `JSONResponse` wrote its dict before."""
    return Response(encoded(model), 200, headers, "application/json")


@router.get(
    "/parties/{party_id}",
    operation_id="getParty",
    tags=["parties"],
    response_model=PartyEntry,
    dependencies=[Consistent],
    responses=BY_PATH,
)
async def get_party(party_id: PartyId, pool: Pool) -> Response:
    """The party's directory entry, with the parties it succeeded and that succeeded it."""
    entry = await queries.party(pool, party_id)
    if entry is None:
        raise HTTPException(404, f"no party {party_id!r} in the read model's directory")
    return answer(PartyEntry.model_validate(entry), {"ETag": f'"{entry["version"]}"'})


@router.get(
    "/parties/{party_id}/obligations",
    operation_id="listPartyObligations",
    tags=["parties"],
    response_model=PartyObligations,
    dependencies=[Consistent],
    responses=PAGED_BY_PATH,
)
async def party_obligations(
    party_id: PartyId,
    pool: Pool,
    status: Annotated[
        Literal["active", "all", "transferred"],
        Query(
            description="`active` and `all`: what the party holds now; `transferred`: what it "
            "passed on to its successors when it ceased"
        ),
    ] = "active",
    limit: KeyedLimit = MAX_KEYED_PAGE,
    cursor: KeyedCursor = None,
) -> Response:
    after = _decode_key_cursor(cursor, 3)
    obligations = await queries.party_obligations(pool, party_id, status, _as_obligation_key(after), limit)
    next_cursor = (
        _encode_key_cursor(queries.obligation_key(obligations[-1])) if len(obligations) == limit else None
    )
    page = {
        "party_id": party_id,
        "obligations": obligations,
        "succeeded_by": await queries.succeeded_by(pool, party_id),
        "position": await queries.applied_position(pool),
        "next_cursor": next_cursor,
    }
    return answer(PartyObligations.model_validate(page))


@router.get(
    "/parties/{party_id}/history",
    operation_id="listPartyHistory",
    tags=["parties"],
    response_model=PartyHistory,
    dependencies=[Consistent],
    responses=PAGED_BY_PATH,
)
async def party_history(
    party_id: PartyId,
    pool: Pool,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    after = _decode_cursor(cursor)
    events = await queries.party_history(pool, party_id, after, limit)
    next_cursor = str(events[-1]["position"]) if len(events) == limit else None
    page = {"party_id": party_id, "events": events, "next_cursor": next_cursor}
    return answer(PartyHistory.model_validate(page))


@router.get(
    "/agreements",
    operation_id="listAgreements",
    tags=["agreements"],
    response_model=AgreementList,
    dependencies=[Consistent],
    responses=PAGED,
)
async def list_agreements(
    pool: Pool,
    party_id: Annotated[str | None, Query(pattern=SLUG)] = None,
    locality: Annotated[str | None, Query(max_length=300, description=LOCALITY_DESCRIPTION)] = None,
    status: Literal["active", "closed"] | None = None,
    q: Annotated[str | None, Query(max_length=300, description=Q_DESCRIPTION)] = None,
    document_type: Annotated[
        DocumentType | None,
        Query(
            description="The document number's type, as Appendix III of Decree 30/2020/NĐ-CP abbreviates it"
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=40)] = None,
) -> Response:
    words = queries.search_words(q) if q else []
    if words:
        found = await queries.search_agreements(
            pool,
            party_id=party_id,
            locality=locality,
            status=status,
            words=words,
            after=_decode_ranked_cursor(cursor),
            limit=limit,
            document_type=document_type,
        )
        ranked_cursor = _encode_ranked_cursor(found[-1][0]) if len(found) == limit else None
        page = {"agreements": [r for _, r in found], "next_cursor": ranked_cursor}
        return answer(AgreementList.model_validate(page))
    # No word to look for (no `q`, or one of spaces and marks only): the listing, as before.
    rows = await queries.agreements(
        pool,
        party_id=party_id,
        locality=locality,
        status=status,
        after=_decode_cursor(cursor),
        limit=limit,
        document_type=document_type,
    )
    next_cursor = str(rows[-1][0]) if len(rows) == limit else None
    return answer(
        AgreementList.model_validate({"agreements": [r for _, r in rows], "next_cursor": next_cursor})
    )


@router.get(
    "/agreements/{agreement_id}",
    operation_id="getAgreement",
    tags=["agreements"],
    response_model=AgreementDocument,
    dependencies=[Consistent],
    responses=BY_PATH,
)
async def get_agreement(agreement_id: Annotated[str, Path(max_length=64)], pool: Pool) -> Response:
    """The agreement as the read model holds it (validated from its jsonb's text, read once)."""
    text = await queries.agreement_json(pool, agreement_id)
    if text is None:
        raise HTTPException(404, f"no agreement {agreement_id!r} in the read model")
    doc = AgreementDocument.model_validate_json(text)
    return answer(doc, {"ETag": f'"{doc.version}"'})


@router.get(
    "/reports/overdue",
    operation_id="listOverdueObligations",
    tags=["reports"],
    response_model=OverdueReport,
    dependencies=[Consistent],
    responses=PAGED,
)
async def overdue(
    period: Period,
    pool: Pool,
    party_id: Annotated[str | None, Query(pattern=SLUG, description=OVERDUE_PARTY_DESCRIPTION)] = None,
    limit: KeyedLimit = MAX_KEYED_PAGE,
    cursor: KeyedCursor = None,
) -> Response:
    after = _decode_key_cursor(cursor, 4)
    key = (after[0], after[1], after[2], after[3]) if after is not None else None
    obligations = await queries.overdue(pool, period, key, limit, party_id)
    next_cursor = (
        _encode_key_cursor(queries.overdue_key(obligations[-1])) if len(obligations) == limit else None
    )
    page = {"period": period, "obligations": obligations, "next_cursor": next_cursor}
    return answer(OverdueReport.model_validate(page))


@router.get(
    "/projections/status",
    operation_id="getProjectionStatus",
    tags=["status"],
    response_model=ProjectionStatus,
)
async def projection_status(request: Request, pool: Pool) -> Response:
    settings: ProjectionSettings = request.app.state.settings
    status = await queries.status(pool, settings.consumer_group)
    worker = getattr(request.app.state, "worker", None)
    lag = await worker.lag() if worker is not None else None
    state = {"name": "read_models", "consumer_group": settings.consumer_group, **status, "lag_events": lag}
    return answer(ProjectionStatus.model_validate({"projections": [state]}))


def _decode_cursor(cursor: str | None) -> int:
    if cursor is None:
        return 0
    # ASCII digits only (str.isdigit also takes "²"), and within bigint (found by fuzzing).
    if not full_match(CURSOR, cursor) or int(cursor) > MAX_POSITION:
        raise HTTPException(400, "cursor must be a value returned as next_cursor")
    return int(cursor)


def _as_obligation_key(key: tuple[str, ...] | None) -> queries.ObligationKey | None:
    return (key[0], key[1], key[2]) if key is not None else None


def _encode_key_cursor(key: tuple[str, ...]) -> str:
    """The last item's sort key as unpadded base64url of its JSON array (opaque to clients)."""
    text = json.dumps(list(key), ensure_ascii=False, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=").decode()


def _decode_key_cursor(cursor: str | None, arity: int) -> tuple[str, ...] | None:
    if cursor is None:
        return None
    refused = HTTPException(400, "cursor must be a value returned as next_cursor")
    if _KEY_CURSOR.fullmatch(cursor) is None:
        raise refused
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError:  # binascii.Error, UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise refused from None
    # Only text PostgreSQL can hold: a NUL or a lone surrogate (escaped in JSON) is no key of ours.
    if (
        not isinstance(key, list)
        or len(key) != arity
        or not all(isinstance(part, str) and len(part) <= MAX_KEY_PART and _storable(part) for part in key)
    ):
        raise refused
    return tuple(key)


def _storable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def _encode_ranked_cursor(key: queries.Ranked) -> str:
    """`<bits>.<position>`: the rank as the bits of its float4, so it comes back exactly."""
    (bits,) = struct.unpack(">I", struct.pack(">f", key.rank))
    return f"{bits}.{key.first_position}"


def _decode_ranked_cursor(cursor: str | None) -> queries.Ranked | None:
    if cursor is None:
        return None
    match = full_match(RANKED_CURSOR, cursor)
    # Bits up to those of 1.0 are the floats 0 to 1 (similarities), in the same order.
    if match is None or int(match[1]) > _RANK_ONE_BITS or int(match[2]) > MAX_POSITION:
        raise HTTPException(400, "cursor must be a value returned as next_cursor")
    (rank,) = struct.unpack(">f", struct.pack(">I", int(match[1])))
    return queries.Ranked(rank, int(match[2]))


def install_errors(app: FastAPI) -> None:
    problems.install(app)

    @app.exception_handler(NotYetApplied)
    async def _not_yet(request: Request, exc: NotYetApplied) -> JSONResponse:
        return problems.problem(
            503,
            f"the read models have not applied position {exc.position} yet; retry shortly",
            kind="not-yet-consistent",
            headers={"Retry-After": "1"},
        )
