"""The overdue report of one body, for a Front committee or a people's committee (issue 23): the
obligations of the agreements the body is a current party of, whichever party leads them, that
have no report from their lead for a period that has ended inside the span chosen (a year, a
half, a quarter or a month).

Which set, precisely: for each period of any form that lies wholly inside the span and whose
last day is before today, the projections' `GET /v1/reports/overdue?period=…&party_id=<body>`
(docs/CONTRACT.md: active obligations of the body's agreements whose cadence asks for a report
in that period and that have none from their lead), every page of it. A `once` obligation is
kept only for the year its term ends, and only while its lead has reported nothing
(`due.owes`). Each row then gets, from the agreement's document, its supporting bodies, the
names of the bodies, and the obligation's last report by any party.

`rows_of` is pure; `gather` does the reading.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from coordreg_contracts import periods
from coordreg_contracts.client.answers import (
    AgreementDocument,
    DocumentReport,
    OverdueObligation,
    OverdueReport,
)
from coordreg_contracts.common import Cadence
from pydantic import ValidationError

from services.console import due
from services.console.backend import Backend

# Pages of at most this many items: the projections' largest (docs/CONTRACT.md B7).
PAGE = 500


class Unavailable(Exception):
    """The projections did not answer as the contract says (down, 503, or an unexpected body)."""


@dataclass(frozen=True)
class Body:
    party_id: str
    name: str


@dataclass(frozen=True)
class LastReport:
    period: str
    status: str
    completion_percent: int | None
    reported_on: str
    reporter: Body


@dataclass(frozen=True)
class Row:
    agreement_id: str
    document_number: str
    agreement_title: str
    obligation_id: str
    title: str
    cadence: str
    lead: Body
    supporters: tuple[Body, ...]
    period: str
    period_end: dt.date
    days_overdue: int
    last_report: LastReport | None


def periods_to_ask(span: str, today: dt.date) -> list[str]:
    """The periods inside `span` that have ended by `today`, longest form first."""
    return [period for period in periods.within(span) if due.ended(period, today)]


def _names(document: AgreementDocument) -> dict[str, str]:
    names = {party.party_id: party.name for party in document.former_parties}
    names.update({party.party_id: party.name for party in document.parties})
    return names


def _last_report(reports: Iterable[DocumentReport], names: Mapping[str, str]) -> LastReport | None:
    """The latest period reported, by any party (the later report of a period wins: decision 6)."""
    latest = max(reports, key=lambda r: (periods.sort_key(r.period), r.sequence), default=None)
    if latest is None:
        return None
    reporter = Body(latest.party_id, names.get(latest.party_id, latest.party_id))
    return LastReport(latest.period, latest.status, latest.completion_percent, latest.reported_on, reporter)


def rows_of(
    found: Iterable[tuple[str, OverdueObligation]],
    documents: Mapping[str, AgreementDocument],
    today: dt.date,
) -> list[Row]:
    """The report's rows from the projections' overdue items (each with the period it was listed
    for) and the documents of their agreements; ordered by agreement, obligation and period."""
    rows = []
    for period, item in found:
        document = documents.get(item.agreement_id)
        obligation = (
            next((o for o in document.obligations if o.obligation_id == item.obligation_id), None)
            if document
            else None
        )
        if document is None or obligation is None:
            continue  # gone between the two reads (never, for an active obligation): nothing to show
        reports = [r for r in document.reports if r.obligation_id == item.obligation_id]
        lead_reported = {r.period for r in reports if r.party_id == item.lead_party_id}
        cadence = due.cadence_of(item.cadence)
        term_end = dt.date.fromisoformat(document.term.end)
        if cadence is Cadence.ONCE and not due.owes(cadence, period, term_end, lead_reported):
            continue
        names = _names(document)
        rows.append(
            Row(
                agreement_id=item.agreement_id,
                document_number=item.document_number,
                agreement_title=item.agreement_title,
                obligation_id=item.obligation_id,
                title=item.title,
                cadence=item.cadence,
                lead=Body(item.lead_party_id, names.get(item.lead_party_id, item.lead_party_id)),
                supporters=tuple(Body(p, names.get(p, p)) for p in obligation.supporting_party_ids),
                period=period,
                period_end=periods.bounds(period)[1],
                days_overdue=due.days_overdue(period, today),
                last_report=_last_report(reports, names),
            )
        )
    rows.sort(key=lambda r: (r.document_number, r.agreement_id, r.obligation_id, periods.sort_key(r.period)))
    return rows


async def _read(backend: Backend, token: str, path: str, params: dict[str, Any] | None = None) -> Any:
    try:
        answer = await backend.read(backend.projections, token, path, params)
    except httpx.HTTPError as error:
        raise Unavailable(path) from error
    if answer.status != 200:
        raise Unavailable(f"{path}: {answer.status}")
    return answer.body


async def _overdue(
    backend: Backend, token: str, party_id: str, period: str
) -> list[tuple[str, OverdueObligation]]:
    found: list[tuple[str, OverdueObligation]] = []
    cursor: str | None = None
    while True:
        params = {"period": period, "party_id": party_id, "limit": PAGE}
        body = await _read(
            backend, token, "/v1/reports/overdue", params | ({"cursor": cursor} if cursor else {})
        )
        try:
            page = OverdueReport.model_validate(body)
        except ValidationError as error:
            raise Unavailable("/v1/reports/overdue") from error
        found.extend((period, item) for item in page.obligations)
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


async def _document(backend: Backend, token: str, agreement_id: str) -> AgreementDocument:
    body = await _read(backend, token, f"/v1/agreements/{quote(agreement_id, safe='')}")
    try:
        return AgreementDocument.model_validate(body)
    except ValidationError as error:
        raise Unavailable(agreement_id) from error


async def gather(backend: Backend, token: str, party_id: str, span: str, today: dt.date) -> list[Row]:
    """The report of `party_id` for `span` as of `today` (raises Unavailable)."""
    lists = await asyncio.gather(
        *(_overdue(backend, token, party_id, p) for p in periods_to_ask(span, today))
    )
    found = [item for listed in lists for item in listed]
    agreement_ids = sorted({item.agreement_id for _, item in found})
    fetched = await asyncio.gather(*(_document(backend, token, a) for a in agreement_ids))
    return rows_of(found, dict(zip(agreement_ids, fetched, strict=True)), today)
