"""`GET /`: "Việc của đơn vị", the obligations of the person's bodies, the latest report of each,
what is due this period and what is overdue, what was inherited through a succession.

Due and overdue, for every cadence (`services/console/due.py`): from each agreement's document,
the periods of the obligation's cadence within the agreement's term that its lead has not
reported; the one running today is due, those that have ended are overdue. The sections "Quá
hạn" and "Đến hạn kỳ này" list what the person's bodies lead; each body's table shows where
every obligation it leads or supports stands.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import httpx
from coordreg_contracts.client.answers import AgreementDocument
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import ValidationError

from services.console import due
from services.console.backend import Backend
from services.console.web import ConsoleOf, today

router = APIRouter()


async def document_of(backend: Backend, token: str, agreement_id: str) -> AgreementDocument | None:
    try:
        answer = await backend.agreement(token, agreement_id)
        return AgreementDocument.model_validate(answer.body) if answer.status == 200 else None
    except (httpx.HTTPError, ValidationError):
        return None


def with_standing(item: dict[str, Any], document: AgreementDocument | None, now: dt.date) -> dict[str, Any]:
    """The obligation item with its lead, its agreement's term end and where it stands today
    (`standing` None when its agreement could not be read)."""
    obligation = (
        next((o for o in document.obligations if o.obligation_id == item["obligation_id"]), None)
        if document is not None
        else None
    )
    if document is None or obligation is None:
        return {**item, "standing": None}
    lead = obligation.lead_party_id
    lead_reported = {
        r.period
        for r in document.reports
        if r.obligation_id == obligation.obligation_id and r.party_id == lead
    }
    start, end = dt.date.fromisoformat(document.term.start), dt.date.fromisoformat(document.term.end)
    return {
        **item,
        "lead_party_id": lead,
        "term_end": document.term.end,
        "standing": due.standing(item["cadence"], start, end, lead_reported, now),
    }


@router.get("/", response_class=HTMLResponse)
async def my_work(request: Request, console: ConsoleOf) -> Response:
    visit = await console.signed_in(request)
    if visit is None:
        return console.to_sign_in()
    session, official, token = visit
    backend = console.services
    now = today()
    # Each body's obligations and directory entry, all read at once.
    answers = await asyncio.gather(
        *(
            backend.party(token, party_id, part)
            for party_id in official.party_ids
            for part in ("/obligations", "")
        )
    )
    bodies = []
    for i, party_id in enumerate(official.party_ids):
        answer, entry = answers[2 * i], answers[2 * i + 1]
        bodies.append(
            {
                "party_id": party_id,
                "name": entry.body.get("name") if entry.status == 200 else None,
                "obligations": answer.body.get("obligations", []) if answer.status == 200 else [],
                "succeeded_by": answer.body.get("succeeded_by") if answer.status == 200 else None,
                "unavailable": answer.status != 200,
            }
        )
    agreement_ids = sorted({item["agreement_id"] for body in bodies for item in body["obligations"]})
    fetched = await asyncio.gather(*(document_of(backend, token, a) for a in agreement_ids))
    documents = dict(zip(agreement_ids, fetched, strict=True))
    for body in bodies:
        body["obligations"] = [
            with_standing(item, documents[item["agreement_id"]], now) for item in body["obligations"]
        ]
    led = [
        item for body in bodies for item in body["obligations"] if item["role"] == "lead" and item["standing"]
    ]
    context = {
        "title": "Việc của đơn vị",
        "bodies": bodies,
        "overdue": [item for item in led if item["standing"].overdue],
        "due_now": [item for item in led if item["standing"].due],
        "today": now.isoformat(),
    }
    return console.page(request, "my_work.html", session, context)
