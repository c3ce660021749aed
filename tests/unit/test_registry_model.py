"""Model-based test: random command sequences against a small, independent model of docs/CONTRACT.md.

The model below is written from the contract's command rules alone (sign, amend with six
change ops, report progress, close); it never calls `decide`, `evolve` or the rule helpers.
Hypothesis drives the real `CommandHandler` over an `InMemoryEventStore` and, for every
command, checks that the handler accepts exactly what the model accepts, refuses with the
same kind of error (422 Rejected, 409 Conflict, 404 NotFound, 412 PreconditionFailed), bumps
the version by one on acceptance, writes no event on refusal, and that the agreement it
folds from the store is the model's agreement.

Where the contract leaves an order or a detail open, the model follows the implementation:
- several refusals at once: 404 before 412 (If-Match) before 409 (closed) before 422; at
  signing, the 422 rules before the duplicate document 409;
- "the same locality" ignores case and repeated blanks, and a document number is taken only in
  the year of its `signed_on` (decision 13: numbers restart every year);
- a supporter listed twice is refused (422);
- after an amendment at least one obligation must still be active;
- a `successor_agreement_id` is checked (exists, not the agreement itself) whatever the outcome;
- "a later report" supersedes by the order the registry recorded them, not by `reported_on`.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any, TypeVar

import pytest
from coordreg_contracts.changes import ChangeTerm
from coordreg_contracts.commands import AmendAgreement, CloseTerm, Command, ReportProgress, SignAgreement
from hypothesis import HealthCheck, Phase, event, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from pydantic import ValidationError

from services.agreement.state import AgreementState
from services.registry import bootstrap
from services.registry.adapters.memory_store import InMemoryEventStore, InMemoryIdempotencyStore
from services.registry.domain.errors import (
    Conflict,
    DomainError,
    NotFound,
    PreconditionFailed,
    Rejected,
)
from services.registry.service_layer.binding import Caller
from services.registry.service_layer.bus import CommandContext, CommandResult
from tests.support.builders import HOA_BINH

T = TypeVar("T")

SIGNING_PARTIES = ("p1", "p2", "p3", "p4")
ALL_PARTIES = (*SIGNING_PARTIES, "p5")  # p5 only ever joins by amendment
SIGNING_OBLIGATIONS = ("o1", "o2", "o3")
ALL_OBLIGATIONS = (*SIGNING_OBLIGATIONS, "o4")
CADENCES = ("monthly", "quarterly", "semiannual", "annual", "once")
OUTCOMES = ("completed", "terminated", "superseded", "expired")
REPORT_STATUSES = ("not_started", "in_progress", "at_risk", "blocked", "completed")
DOCUMENTS = tuple(f"{n}/CTPH" for n in range(1, 21))
LOCALITIES = ("Hòa Bình", "hòa  bình", "Sơn La")
UNKNOWN_AGREEMENT = "no-such-agreement"

FIRST_DAY = date(2021, 1, 1)
LAST_DAY = date(2028, 12, 31)
DATES = st.dates(min_value=FIRST_DAY, max_value=LAST_DAY)

# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MObligation:
    title: str
    lead: str
    supporters: tuple[str, ...]
    cadence: str
    status: str = "active"


@dataclass
class MAgreement:
    agreement_id: str
    version: int
    document_number: str
    locality: str
    signed_on: date
    term: tuple[date, date]
    parties: dict[str, str]  # party_id -> role
    obligations: dict[str, MObligation]
    status: str = "active"
    closure: tuple[str, str | None] | None = None  # (outcome, successor)
    # latest report per (obligation, party, period): (status, completion_percent, reported_on, version)
    reports: dict[tuple[str, str, str], tuple[str, int | None, date, int]] = field(default_factory=dict)
    amendments: tuple[str, ...] = ()

    def view(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "status": self.status,
            "document_number": self.document_number,
            "signed_on": self.signed_on,
            "term": self.term,
            "parties": dict(self.parties),
            "obligations": {
                oid: (o.title, o.lead, o.supporters, o.cadence, o.status)
                for oid, o in self.obligations.items()
            },
            "reports": dict(self.reports),
            "closure": self.closure,
            "amendments": self.amendments,
        }


def handler_view(state: AgreementState) -> dict[str, Any]:
    return {
        "version": state.version,
        "status": state.status,
        "document_number": state.document_number,
        "signed_on": state.signed_on,
        "term": (state.term.start, state.term.end),
        "parties": {pid: str(p.role) for pid, p in state.parties.items()},
        "obligations": {
            oid: (
                o.obligation.title,
                o.obligation.lead_party_id,
                tuple(o.obligation.supporting_party_ids),
                str(o.obligation.cadence),
                o.status,
            )
            for oid, o in state.obligations.items()
        },
        "reports": {
            key: (r.status, r.completion_percent, r.reported_on, r.sequence)
            for key, r in state.reports.items()
        },
        "closure": None
        if state.closure is None
        else (state.closure.outcome, state.closure.successor_agreement_id),
        "amendments": tuple(state.amendment_documents),
    }


def same_locality(a: str, b: str) -> bool:
    """One locality however it is capitalised or spaced ("Hòa Bình" is "HÒA  BÌNH")."""
    return a.casefold().split() == b.casefold().split()


# Reporting periods, written from the contract: `2024` (annual/once), `2024-H1`, `2024-Q3`, `2024-07`.
PERIOD_FORM = {
    "annual": "year",
    "once": "year",
    "semiannual": "half",
    "quarterly": "quarter",
    "monthly": "month",
}


def period_form(period: str) -> str:
    if len(period) == 4:
        return "year"
    suffix = period[5:]
    return {"H": "half", "Q": "quarter"}.get(suffix[0], "month")


def period_span(period: str) -> tuple[date, date]:
    year = int(period[:4])
    form = period_form(period)
    if form == "year":
        return date(year, 1, 1), date(year, 12, 31)
    if form == "month":
        first_month, months = int(period[5:]), 1
    elif form == "quarter":
        first_month, months = 3 * int(period[6:]) - 2, 3
    else:
        first_month, months = 6 * int(period[6:]) - 5, 6
    start = date(year, first_month, 1)
    after = first_month + months
    end = date(year + 1, 1, 1) if after > 12 else date(year, after, 1)
    return start, end - timedelta(days=1)


def obligation_ok(lead: str, supporters: tuple[str, ...], parties: dict[str, str]) -> bool:
    return (
        lead in parties
        and all(s in parties for s in supporters)
        and lead not in supporters
        and len(set(supporters)) == len(supporters)
    )


class Model:
    def __init__(self) -> None:
        self.agreements: dict[str, MAgreement] = {}

    def sign(self, body: dict[str, Any]) -> type[DomainError] | None:
        party_ids = [p["party_id"] for p in body["parties"]]
        roles = {p["party_id"]: p["role"] for p in body["parties"]}
        leads = [p for p in body["parties"] if p["role"] == "lead"]
        obligation_ids = [o["obligation_id"] for o in body["obligations"]]
        ok = (
            len(party_ids) >= 2
            and len(set(party_ids)) == len(party_ids)
            and len(leads) == 1
            and len(obligation_ids) >= 1
            and len(set(obligation_ids)) == len(obligation_ids)
            and all(
                obligation_ok(o["lead_party_id"], tuple(o["supporting_party_ids"]), roles)
                for o in body["obligations"]
            )
            and body["term"]["start"] <= body["term"]["end"]
            and body["signed_on"] <= body["term"]["end"]
            and (body["parent_agreement_id"] is None or body["parent_agreement_id"] in self.agreements)
        )
        if not ok:
            return Rejected
        for other in self.agreements.values():
            if (
                other.document_number == body["document_number"]
                and same_locality(other.locality, body["locality"])
                and other.signed_on.year == body["signed_on"].year
            ):
                return Conflict
        return None

    def signed(self, agreement_id: str, body: dict[str, Any]) -> MAgreement:
        agreement = MAgreement(
            agreement_id=agreement_id,
            version=1,
            document_number=body["document_number"],
            locality=body["locality"],
            signed_on=body["signed_on"],
            term=(body["term"]["start"], body["term"]["end"]),
            parties={p["party_id"]: p["role"] for p in body["parties"]},
            obligations={
                o["obligation_id"]: MObligation(
                    o["title"], o["lead_party_id"], tuple(o["supporting_party_ids"]), o["cadence"]
                )
                for o in body["obligations"]
            },
        )
        self.agreements[agreement_id] = agreement
        return agreement

    def amend(
        self, agreement_id: str, body: dict[str, Any], expected_version: int | None
    ) -> tuple[type[DomainError] | None, MAgreement | None]:
        current = self.agreements.get(agreement_id)
        if current is None:
            return NotFound, None
        if expected_version is not None and expected_version != current.version:
            return PreconditionFailed, None
        if current.status == "closed":
            return Conflict, None
        after = copy.deepcopy(current)
        for change in body["changes"]:
            if not self._apply(after, change):
                return Rejected, None
        leads = [pid for pid, role in after.parties.items() if role == "lead"]
        if len(after.parties) < 2 or len(leads) != 1:
            return Rejected, None
        if not any(o.status == "active" for o in after.obligations.values()):
            return Rejected, None
        after.version += 1
        after.amendments = (*after.amendments, body["document_number"])
        return None, after

    @staticmethod
    def _apply(a: MAgreement, change: dict[str, Any]) -> bool:
        """One change on the agreement as the earlier changes left it; False if it breaks a rule."""
        op = change["op"]
        if op == "add_obligation":
            o = change["obligation"]
            if o["obligation_id"] in a.obligations:  # withdrawn ones stay in history
                return False
            supporters = tuple(o["supporting_party_ids"])
            if not obligation_ok(o["lead_party_id"], supporters, a.parties):
                return False
            a.obligations[o["obligation_id"]] = MObligation(
                o["title"], o["lead_party_id"], supporters, o["cadence"]
            )
            return True
        if op in ("revise_obligation", "withdraw_obligation"):
            current = a.obligations.get(change["obligation_id"])
            if current is None or current.status != "active":
                return False
            if op == "withdraw_obligation":
                a.obligations[change["obligation_id"]] = replace(current, status="withdrawn")
                return True
            revised = MObligation(
                title=change.get("title") or current.title,
                lead=change.get("lead_party_id") or current.lead,
                supporters=current.supporters
                if change.get("supporting_party_ids") is None
                else tuple(change["supporting_party_ids"]),
                cadence=change.get("cadence") or current.cadence,
            )
            if not obligation_ok(revised.lead, revised.supporters, a.parties):
                return False
            a.obligations[change["obligation_id"]] = revised
            return True
        if op == "add_party":
            party = change["party"]
            if party["party_id"] in a.parties:
                return False
            a.parties[party["party_id"]] = party["role"]
            return True
        if op == "remove_party":
            pid = change["party_id"]
            if pid not in a.parties:
                return False
            if any(
                o.status == "active" and (o.lead == pid or pid in o.supporters)
                for o in a.obligations.values()
            ):
                return False
            del a.parties[pid]
            return True
        assert op == "change_term"
        start, end = change["term"]["start"], change["term"]["end"]
        if a.signed_on > end:
            return False
        a.term = (start, end)
        return True

    def report(self, agreement_id: str, body: dict[str, Any]) -> type[DomainError] | None:
        a = self.agreements.get(agreement_id)
        if a is None:
            return NotFound
        if a.status == "closed":
            return Conflict
        ob = a.obligations.get(body["obligation_id"])
        if ob is None or ob.status != "active":
            return Rejected
        if body["party_id"] != ob.lead and body["party_id"] not in ob.supporters:
            return Rejected
        if period_form(body["period"]) != PERIOD_FORM[ob.cadence]:
            return Rejected
        first, last = period_span(body["period"])
        if last < a.term[0] or first > a.term[1]:
            return Rejected
        if body["reported_on"] < a.signed_on:
            return Rejected
        return None

    def reported(self, agreement_id: str, body: dict[str, Any]) -> None:
        a = self.agreements[agreement_id]
        a.version += 1
        key = (body["obligation_id"], body["party_id"], body["period"])
        a.reports[key] = (body["status"], body["completion_percent"], body["reported_on"], a.version)

    def close(self, agreement_id: str, body: dict[str, Any]) -> type[DomainError] | None:
        a = self.agreements.get(agreement_id)
        if a is None:
            return NotFound
        if a.status == "closed":
            return Conflict
        if body["closed_on"] < a.signed_on:
            return Rejected
        successor = body["successor_agreement_id"]
        if body["outcome"] == "superseded" and successor is None:
            return Rejected
        if successor is not None and (successor == agreement_id or successor not in self.agreements):
            return Rejected
        return None

    def closed(self, agreement_id: str, body: dict[str, Any]) -> None:
        a = self.agreements[agreement_id]
        a.version += 1
        a.status = "closed"
        a.closure = (body["outcome"], body["successor_agreement_id"])


# --------------------------------------------------------------------------------------------
# Generators of request bodies: mostly valid, with rule breaks mixed in
# --------------------------------------------------------------------------------------------


def pick(draw: st.DrawFn, choices: Iterable[T]) -> T:
    return draw(st.sampled_from(tuple(choices)))


def usually(draw: st.DrawFn, odds: int = 6) -> bool:
    """True but one time in `odds` (and shrinks towards True, the ordinary case)."""
    return draw(st.integers(0, odds - 1)) < odds - 1


def some_of(draw: st.DrawFn, choices: Iterable[str]) -> list[str]:
    """A subset, in order (one draw: a bit mask)."""
    pool = tuple(choices)
    mask = draw(st.integers(0, 2 ** len(pool) - 1))
    return [item for bit, item in enumerate(pool) if mask >> bit & 1]


def noisy_ids(draw: st.DrawFn) -> list[str]:
    """Supporters that may repeat or name anyone."""
    return draw(st.lists(st.sampled_from(ALL_PARTIES), max_size=3))


SIGN_CORRUPTIONS = (
    "one_party",
    "duplicate_party",
    "no_lead",
    "two_leads",
    "no_obligations",
    "duplicate_obligation",
    "lead_not_party",
    "supporter_not_party",
    "supporter_is_lead",
    "supporter_twice",
    "signed_after_term",
    "unknown_parent",
)


def obligation_body(oid: str, lead: str, supporters: list[str], cadence: str) -> dict[str, Any]:
    return {
        "obligation_id": oid,
        "title": f"Nghĩa vụ {oid}",
        "lead_party_id": lead,
        "supporting_party_ids": supporters,
        "cadence": cadence,
    }


@st.composite
def sign_bodies(draw: st.DrawFn, existing: tuple[tuple[str, str, str, date], ...]) -> dict[str, Any]:
    """`existing`: (agreement_id, document_number, locality, signed_on) of the agreements signed so far."""
    party_ids = draw(st.permutations(SIGNING_PARTIES))[: draw(st.integers(2, 4))]
    lead = pick(draw, party_ids)
    parties = [
        {"party_id": pid, "name": f"Bên {pid}", "role": "lead" if pid == lead else "member"}
        for pid in party_ids
    ]
    obligations = []
    for oid in draw(st.permutations(SIGNING_OBLIGATIONS))[: draw(st.integers(1, 3))]:
        ob_lead = pick(draw, party_ids)
        supporters = some_of(draw, (p for p in party_ids if p != ob_lead))
        obligations.append(obligation_body(oid, ob_lead, supporters, pick(draw, CADENCES)))
    start = draw(DATES)
    end = draw(st.dates(min_value=start, max_value=LAST_DAY))
    signed_on = draw(st.dates(min_value=FIRST_DAY, max_value=end))
    body: dict[str, Any] = {
        "document_number": pick(draw, DOCUMENTS),
        "kind": pick(draw, ("program", "regulation", "plan", "joint_resolution")),
        "title": "Chương trình phối hợp",
        "locality": pick(draw, LOCALITIES),
        "signed_on": signed_on,
        "term": {"start": start, "end": end},
        "parties": parties,
        "obligations": obligations,
        "parent_agreement_id": None,
    }
    if existing and not usually(draw, 4):
        body["parent_agreement_id"] = pick(draw, existing)[0]
    if existing and not usually(draw, 8):  # the same document again, perhaps written differently
        _, document_number, locality, their_day = pick(draw, existing)
        body["document_number"] = document_number
        body["locality"] = pick(draw, (locality, f" {locality.upper()} ", "Sơn La"))
        # Signed the same day, the same year, or just across the turn of a year.
        year = their_day.year
        signed_on = pick(
            draw,
            (their_day, date(year, 1, 1), date(year, 12, 31), date(year - 1, 12, 31), date(year + 1, 1, 1)),
        )
        body["signed_on"] = signed_on
        end = max(end, signed_on)
        body["term"]["end"] = end
    corruptions = (
        [] if usually(draw, 3) else draw(st.lists(st.sampled_from(SIGN_CORRUPTIONS), min_size=1, max_size=2))
    )
    outsider = pick(draw, (p for p in ALL_PARTIES if p not in party_ids))
    first = obligations[0]
    for corruption in corruptions:
        if corruption == "one_party":
            body["parties"] = parties[:1]
        elif corruption == "duplicate_party":
            body["parties"] = [*parties, {**parties[0], "role": "member", "name": "Bản sao"}]
        elif corruption == "no_lead":
            body["parties"] = [{**p, "role": "member"} for p in body["parties"]]
        elif corruption == "two_leads":
            body["parties"] = [{**p, "role": "lead"} for p in body["parties"]]
        elif corruption == "no_obligations":
            body["obligations"] = []
        elif corruption == "duplicate_obligation":
            body["obligations"] = [*obligations, {**first, "title": "Trùng mã"}]
        elif corruption == "lead_not_party":
            first["lead_party_id"] = outsider
        elif corruption == "supporter_not_party":
            first["supporting_party_ids"] = [*first["supporting_party_ids"], outsider]
        elif corruption == "supporter_is_lead":
            first["supporting_party_ids"] = [*first["supporting_party_ids"], first["lead_party_id"]]
        elif corruption == "supporter_twice":
            twice = pick(draw, party_ids)
            first["supporting_party_ids"] = [*first["supporting_party_ids"], twice, twice]
        elif corruption == "signed_after_term":
            body["signed_on"] = end + timedelta(days=draw(st.integers(1, 400)))
        elif corruption == "unknown_parent":
            body["parent_agreement_id"] = UNKNOWN_AGREEMENT
    return body


@st.composite
def changes(draw: st.DrawFn, a: MAgreement) -> dict[str, Any]:
    """One change; its ids mostly fit the agreement, sometimes not at all."""
    parties = sorted(a.parties)
    active = sorted(oid for oid, o in a.obligations.items() if o.status == "active")
    op = pick(
        draw,
        (
            "add_obligation",
            "revise_obligation",
            "withdraw_obligation",
            "add_party",
            "remove_party",
            "change_term",
        ),
    )
    if op == "add_obligation":
        unused = [o for o in ALL_OBLIGATIONS if o not in a.obligations]
        oid = pick(draw, unused) if unused and usually(draw) else pick(draw, ALL_OBLIGATIONS)
        lead = pick(draw, parties) if usually(draw) else pick(draw, ALL_PARTIES)
        supporters = some_of(draw, (p for p in parties if p != lead)) if usually(draw) else noisy_ids(draw)
        return {"op": op, "obligation": obligation_body(oid, lead, supporters, pick(draw, CADENCES))}
    if op in ("revise_obligation", "withdraw_obligation"):
        oid = (
            pick(draw, active) if active and usually(draw) else pick(draw, (*a.obligations, *ALL_OBLIGATIONS))
        )
        if op == "withdraw_obligation":
            return {"op": op, "obligation_id": oid, "reason": "Không còn phù hợp"}
        change: dict[str, Any] = {"op": op, "obligation_id": oid}
        if draw(st.booleans()):
            change["title"] = pick(draw, ("Sửa tên", "Tên mới"))
        if draw(st.booleans()):
            change["lead_party_id"] = pick(draw, parties) if usually(draw) else pick(draw, ALL_PARTIES)
        if draw(st.booleans()):
            current = a.obligations.get(oid)
            revised_lead = change.get("lead_party_id") or (current.lead if current else None)
            change["supporting_party_ids"] = (
                some_of(draw, (p for p in parties if p != revised_lead)) if usually(draw) else noisy_ids(draw)
            )
        if draw(st.booleans()):
            change["cadence"] = pick(draw, CADENCES)
        return change
    if op == "add_party":
        newcomers = [p for p in ALL_PARTIES if p not in parties]
        pid = pick(draw, newcomers) if newcomers and usually(draw) else pick(draw, ALL_PARTIES)
        role = "member" if usually(draw) else "lead"
        return {"op": op, "party": {"party_id": pid, "name": f"Bên {pid}", "role": role}}
    if op == "remove_party":
        free = [p for p in parties if a.parties[p] != "lead" and not involved(a, p)]
        if len(free) > 0 and draw(st.booleans()):
            return {"op": op, "party_id": pick(draw, free)}
        return {"op": op, "party_id": pick(draw, parties) if usually(draw) else pick(draw, ALL_PARTIES)}
    start = draw(DATES)
    lowest_end = max(start, a.signed_on) if usually(draw) else start
    return {
        "op": op,
        "term": {"start": start, "end": draw(st.dates(min_value=lowest_end, max_value=LAST_DAY))},
    }


def involved(a: MAgreement, party_id: str) -> bool:
    return any(
        o.status == "active" and (o.lead == party_id or party_id in o.supporters)
        for o in a.obligations.values()
    )


@st.composite
def amendment_bodies(draw: st.DrawFn, a: MAgreement) -> dict[str, Any]:
    steps = [draw(changes(a)) for _ in range(draw(st.integers(1, 3)))]
    newcomers = [p for p in ALL_PARTIES if p not in a.parties]
    if newcomers and not usually(draw, 5):
        # Hand the lead over: a new lead party joins and the old one leaves (which it may
        # not do while it still leads or supports an active obligation), in either order.
        old_lead = next(pid for pid, role in a.parties.items() if role == "lead")
        new = pick(draw, newcomers)
        handover: list[dict[str, Any]] = [
            {"op": "add_party", "party": {"party_id": new, "name": f"Bên {new}", "role": "lead"}},
            {"op": "remove_party", "party_id": old_lead},
        ]
        if draw(st.booleans()):
            handover.reverse()
        steps = handover if usually(draw, 2) else [*steps, *handover]
    return {
        "document_number": pick(draw, ("10/QĐ", "11/QĐ")),
        "reason": "Điều chỉnh",
        "effective_on": date(2024, 3, 1),
        "changes": steps,
    }


def period_of(draw: st.DrawFn, form: str, year: int) -> str:
    if form == "year":
        return f"{year}"
    if form == "half":
        return f"{year}-H{draw(st.integers(1, 2))}"
    if form == "quarter":
        return f"{year}-Q{draw(st.integers(1, 4))}"
    return f"{year}-{draw(st.integers(1, 12)):02d}"


@st.composite
def report_bodies(draw: st.DrawFn, a: MAgreement) -> dict[str, Any]:
    active = sorted(oid for oid, o in a.obligations.items() if o.status == "active")
    oid = pick(draw, active) if active and usually(draw) else pick(draw, (*a.obligations, *ALL_OBLIGATIONS))
    ob = a.obligations.get(oid)
    reporters = (ob.lead, *ob.supporters) if ob else ()
    party = pick(draw, reporters) if reporters and usually(draw) else pick(draw, ALL_PARTIES)
    form = (
        PERIOD_FORM[ob.cadence] if ob and usually(draw) else pick(draw, ("year", "half", "quarter", "month"))
    )
    first_year, last_year = a.term[0].year, a.term[1].year
    year = (
        draw(st.integers(first_year, last_year))
        if usually(draw)
        else pick(draw, (first_year - 1, last_year + 1))
    )
    days = draw(st.integers(0, 900)) if usually(draw) else -draw(st.integers(1, 60))
    period = period_of(draw, form, year)
    if a.reports and not usually(draw, 3):  # report again on an (obligation, party, period) already reported
        oid, party, period = pick(draw, sorted(a.reports))
    return {
        "obligation_id": oid,
        "party_id": party,
        "period": period,
        "status": pick(draw, REPORT_STATUSES),
        "completion_percent": draw(st.one_of(st.none(), st.integers(0, 100))),
        "reported_on": a.signed_on + timedelta(days=days),
    }


@st.composite
def close_bodies(draw: st.DrawFn, a: MAgreement, others: tuple[str, ...]) -> dict[str, Any]:
    days = draw(st.integers(0, 2000)) if usually(draw) else -draw(st.integers(1, 60))
    outcome = pick(draw, OUTCOMES)
    anything = (None, a.agreement_id, UNKNOWN_AGREEMENT, *others)
    if usually(draw):
        successor = (pick(draw, others) if others else None) if outcome == "superseded" else None
    else:
        successor = pick(draw, anything)
    return {
        "closed_on": a.signed_on + timedelta(days=days),
        "outcome": outcome,
        "summary": "Tổng kết",
        "successor_agreement_id": successor,
    }


# --------------------------------------------------------------------------------------------
# The state machine
# --------------------------------------------------------------------------------------------


def has_agreements(machine: RegistryMachine) -> bool:
    return bool(machine.model.agreements)


class RegistryMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.store = InMemoryEventStore()
        counter = itertools.count(1)
        self.registry = bootstrap.bootstrap(
            self.store, InMemoryIdempotencyStore(self.store), new_id=lambda: f"id-{next(counter)}"
        )
        self.model = Model()

    def teardown(self) -> None:
        self.loop.close()

    # -- driving the handler -------------------------------------------------------------------

    def event_count(self) -> int:
        return sum(len(stream) for stream in self.store.streams.values())

    def load(self, agreement_id: str) -> AgreementState:
        state = self.loop.run_until_complete(self.registry.agreements.get(agreement_id)).state
        assert state is not None
        return state

    def execute(
        self,
        command: Command,
        predicted: type[DomainError] | None,
        agreement_id: str | None = None,
        expected_version: int | None = None,
    ) -> CommandResult | None:
        """Run one command; check that the handler accepts or refuses it as the model said."""
        before = self.event_count()
        context = CommandContext(
            Caller.in_process("model-test"), "correlation", "causation", expected_version
        )
        result: CommandResult | None = None
        error: DomainError | None = None
        try:
            result = self.loop.run_until_complete(self.registry.bus.run(command, context, agreement_id))
        except DomainError as caught:
            error = caught
        verdict = predicted.__name__ if predicted else "accepted"
        note(
            f"{type(command).__name__} on {agreement_id} (If-Match {expected_version}): model says {verdict}"
        )
        note(f"  handler: {error!r}" if error else f"  handler: {result!r}")
        event(f"{type(command).__name__}: {verdict}")
        if predicted is None:
            assert error is None, f"the contract accepts this command but the handler refused it: {error!r}"
            assert result is not None
            assert self.event_count() == before + 1
            return result
        assert error is not None, f"the contract refuses this command ({verdict}) but the handler accepted it"
        assert type(error) is predicted, f"expected {verdict}, the handler raised {error!r}"
        assert self.event_count() == before, "a refused command wrote an event"
        return None

    def check_agreement(self, agreement_id: str, result: CommandResult) -> None:
        expected = self.model.agreements[agreement_id]
        assert result.agreement_id == agreement_id
        assert result.version == expected.version
        assert result.status == expected.status
        state = self.load(agreement_id)
        assert handler_view(state) == expected.view()
        check_invariants(state)

    def pick_agreement(self, data: st.DataObject) -> tuple[MAgreement, str]:
        """An agreement (mostly an active one) to build a command for, and the id to send it to:
        its own, or now and then an id the registry never gave out."""
        everyone = sorted(self.model.agreements)
        active = [aid for aid in everyone if self.model.agreements[aid].status == "active"]
        choices = active if active and data.draw(st.integers(0, 3), label="active one?") < 3 else everyone
        a = self.model.agreements[data.draw(st.sampled_from(choices), label="agreement")]
        unknown = data.draw(st.integers(0, 11), label="unknown id?") == 11
        return a, UNKNOWN_AGREEMENT if unknown else a.agreement_id

    # -- rules -------------------------------------------------------------------------------------

    @rule(data=st.data())
    def sign(self, data: st.DataObject) -> None:
        existing = tuple(
            (a.agreement_id, a.document_number, a.locality, a.signed_on)
            for a in self.model.agreements.values()
        )
        body = data.draw(sign_bodies(existing), label="sign")
        predicted = self.model.sign(body)
        result = self.execute(SignAgreement.model_validate(body), predicted)
        if result is not None:
            assert result.version == 1
            self.model.signed(result.agreement_id, body)
            self.check_agreement(result.agreement_id, result)

    @precondition(has_agreements)
    @rule(data=st.data())
    def amend(self, data: st.DataObject) -> None:
        a, target = self.pick_agreement(data)
        body = data.draw(amendment_bodies(a), label="amend")
        pin = data.draw(st.sampled_from(("none", "current", "none", "stale", "future")), label="If-Match")
        expected_version = {
            "none": None,
            "current": a.version,
            "stale": a.version - 1,
            "future": a.version + 1,
        }
        predicted, after = self.model.amend(target, body, expected_version[pin])
        result = self.execute(AmendAgreement.model_validate(body), predicted, target, expected_version[pin])
        if result is not None:
            assert after is not None
            self.model.agreements[target] = after
            self.check_agreement(target, result)

    @precondition(has_agreements)
    @rule(data=st.data())
    def report(self, data: st.DataObject) -> None:
        a, target = self.pick_agreement(data)
        body = data.draw(report_bodies(a), label="report")
        predicted = self.model.report(target, body)
        result = self.execute(ReportProgress.model_validate(body), predicted, target)
        if result is not None:
            self.model.reported(target, body)
            self.check_agreement(target, result)

    @precondition(has_agreements)
    @rule(data=st.data())
    def close(self, data: st.DataObject) -> None:
        a, target = self.pick_agreement(data)
        others = tuple(sorted(set(self.model.agreements) - {a.agreement_id}))
        body = data.draw(close_bodies(a, others), label="close")
        predicted = self.model.close(target, body)
        result = self.execute(CloseTerm.model_validate(body), predicted, target)
        if result is not None:
            self.model.closed(target, body)
            self.check_agreement(target, result)

    @rule(start=DATES, days=st.integers(1, 800))
    def reversed_terms_never_become_commands(self, start: date, days: int) -> None:
        reversed_term = {"start": start.isoformat(), "end": (start - timedelta(days=days)).isoformat()}
        with pytest.raises(ValidationError):
            ChangeTerm.model_validate({"op": "change_term", "term": reversed_term})
        with pytest.raises(ValidationError):
            SignAgreement.model_validate({**HOA_BINH, "term": reversed_term})

    @invariant()
    def no_other_agreement_moved(self) -> None:
        """Each stream holds as many events as the model's version of its agreement: a command
        never writes to another agreement (the touched one is compared in full after each command)."""
        streams = {aid: len(events) for aid, events in self.store.streams.items()}
        assert streams == {aid: a.version for aid, a in self.model.agreements.items()}


def check_invariants(state: AgreementState) -> None:
    """What must hold of every agreement the registry accepted, whatever got it there."""
    leads = [pid for pid, p in state.parties.items() if str(p.role) == "lead"]
    assert len(leads) == 1
    assert len(state.parties) >= 2
    active = [o.obligation for o in state.obligations.values() if o.status == "active"]
    assert active
    for ob in active:
        assert ob.lead_party_id in state.parties
        assert all(s in state.parties for s in ob.supporting_party_ids)
        assert ob.lead_party_id not in ob.supporting_party_ids
    assert state.signed_on <= state.term.end
    assert state.term.start <= state.term.end


def test_registry_agrees_with_the_contract_model() -> None:
    run_state_machine_as_test(
        RegistryMachine,
        settings=settings(
            max_examples=200,
            stateful_step_count=30,
            deadline=None,
            database=None,
            # no "explain" phase: it re-runs a failing sequence many times and says little here
            phases=[Phase.explicit, Phase.generate, Phase.target, Phase.shrink],
            suppress_health_check=[
                HealthCheck.too_slow,
                HealthCheck.data_too_large,
                HealthCheck.filter_too_much,
            ],
        ),
    )


# The model's own period arithmetic (it must not borrow the registry's), checked by hand.
@pytest.mark.parametrize(
    ("period", "span"),
    [
        ("2024", (date(2024, 1, 1), date(2024, 12, 31))),
        ("2024-H2", (date(2024, 7, 1), date(2024, 12, 31))),
        ("2024-Q1", (date(2024, 1, 1), date(2024, 3, 31))),
        ("2024-Q4", (date(2024, 10, 1), date(2024, 12, 31))),
        ("2024-02", (date(2024, 2, 1), date(2024, 2, 29))),
        ("2023-12", (date(2023, 12, 1), date(2023, 12, 31))),
    ],
)
def test_model_period_spans(period: str, span: tuple[date, date]) -> None:
    assert period_span(period) == span
