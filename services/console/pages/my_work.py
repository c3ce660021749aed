"""`GET /`: "Việc của đơn vị", the obligations of the person's bodies, the latest report of each,
what is overdue, what was inherited through a succession."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from services.console import vietnamese
from services.console.web import ConsoleOf, today

router = APIRouter()


@router.get("/", response_class=HTMLResponse)
async def my_work(request: Request, console: ConsoleOf) -> Response:
    found = await console.signed_in(request)
    if found is None:
        return console.to_sign_in()
    session, official = found
    backend = console.services
    token = console.token_for(session)
    now = today()
    bodies = []
    for party_id in official.party_ids:
        answer = await backend.read(backend.projections, token, f"/v1/parties/{party_id}/obligations")
        entry = await backend.read(backend.projections, token, f"/v1/parties/{party_id}")
        obligations = answer.body.get("obligations", []) if answer.status == 200 else []
        for item in obligations:
            item["current_period"] = vietnamese.current_period(item["cadence"], now)
        bodies.append(
            {
                "party_id": party_id,
                "name": entry.body.get("name") if entry.status == 200 else None,
                "obligations": obligations,
                "succeeded_by": answer.body.get("succeeded_by") if answer.status == 200 else None,
                "unavailable": answer.status != 200,
            }
        )
    # Overdue: the last whole year's reports that the lead party has not made, for these bodies.
    last_year = str(now.year - 1)
    overdue_answer = await backend.read(
        backend.projections, token, "/v1/reports/overdue", {"period": last_year}
    )
    overdue = [
        item
        for item in (overdue_answer.body.get("obligations", []) if overdue_answer.status == 200 else [])
        if item["lead_party_id"] in official.party_ids
    ]
    context = {
        "title": "Việc của đơn vị",
        "bodies": bodies,
        "overdue": overdue,
        "overdue_period": last_year,
        "today": now.isoformat(),
    }
    return console.page(request, "my_work.html", session, context)
