"""Model-based test: random command sequences against a small, independent model of docs/CONTRACT.md.

The model below is written from the contract's rules alone (sign, amend with six change ops,
report progress, close; the party directory, successions and their process manager, decisions
15-18); it never calls `decide`, `evolve`, `transfer` or the rule helpers. Hypothesis drives the
real command bus and succession manager over an `InMemoryEventStore` and, for every step,
checks that the registry accepts exactly what the model accepts, refuses with the same kind of
error (422 Rejected, 409 Conflict, 404 NotFound, 412 PreconditionFailed), writes no event on
refusal, that the agreements and directory entries it folds from the store are the model's,
and that the succession manager transfers exactly the agreements the model says (closed ones
and ones the party left never change).

Where the contract leaves an order or a detail open, the model follows the implementation:
- several refusals at once: 404 before 412 (If-Match) before 409 (closed) before 422; at
  signing, the 422 rules (a ceased signatory among them) before the duplicate document 409;
  for a succession, 404 (unknown party) before 409 (second succession) before 422;
- "the same locality" ignores case and repeated blanks, and a document number is taken only in
  the year of its `signed_on` (decision 13: numbers restart every year);
- a supporter listed twice is refused (422);
- after an amendment at least one obligation must still be active;
- a `successor_agreement_id` is checked (exists, not the agreement itself) whatever the outcome;
- "a later report" supersedes by the order the registry recorded them, not by `reported_on`;
- a party's "earliest signing" is the earliest `signed_on` of every agreement that ever named it
  as a party (signed, added by amendment, or given to it by a transfer);
- a transfer makes the default successor a party even when no obligation goes to it, moves
  withdrawn obligations too, and drops a successor from an obligation's supporters when it
  leads it; an agreement a transfer leaves with one party is kept (a merger of two parties);
- the manager carries the parties in the order they were queued (queuing a party again moves it
  to the back), each party's agreements in signing order; a transfer queues every successor of
  the succession that has ceased since, and a run carries only what was queued when it began;
- an amendment may not add a party that has ceased, whatever its date (decision 16), and
  registers the parties it adds that the directory does not hold, from that agreement.
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
from coordreg_contracts.parties import (
    PartyCommand,
    PartyRegistered,
    RecordSuccession,
    RegisterParty,
    RenameParty,
    is_party_subject,
    party_id_of,
)
from hypothesis import HealthCheck, Phase, event, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from pydantic import ValidationError

from services.agreement.state import AgreementState
from services.directory.state import PartyState
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
from services.registry.service_layer.bus import CommandContext, CommandResult, PartyResult
from services.registry.service_layer.successions import Carried
from tests.support.builders import HOA_BINH

T = TypeVar("T")

SIGNING_PARTIES = ("p1", "p2", "p3", "p4")
ALL_PARTIES = (*SIGNING_PARTIES, "p5")  # p5 only ever joins by amendment
# The directory also knows p6 and p7 once registered: successors that never signed. p9 never is.
DIRECTORY_PARTIES = (*ALL_PARTIES, "p6", "p7")
UNKNOWN_PARTY = "p9"
KINDS = ("department", "peoples_committee", "front_committee", "mass_organisation")
PROVINCES = (None, "Phú Thọ", "Hòa Bình", "Sơn La")  # what the directory takes; "Atlantis" it refuses
LEGAL_BASES = ("202/2025/QH15", "45/2025/NĐ-CP")
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
    # Every transfer of it, oldest first: (from, to, effective_on, legal_basis).
    inherited: tuple[tuple[str, str, date, str], ...] = ()

    def names(self, party_id: str) -> bool:
        return self.lead == party_id or party_id in self.supporters

    def ceded_by(self, party_id: str) -> tuple[str, str, date, str] | None:
        return next((i for i in self.inherited if i[0] == party_id), None)


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
    names: dict[str, str]  # party_id -> the name the agreement gives it
    status: str = "active"
    closure: tuple[str, str | None] | None = None  # (outcome, successor)
    # latest report per (obligation, party, period): (status, completion_percent, reported_on, version)
    reports: dict[tuple[str, str, str], tuple[str, int | None, date, int]] = field(default_factory=dict)
    amendments: tuple[str, ...] = ()
    # party that ceased -> (name, role, effective_on, legal_basis, successors)
    former: dict[str, tuple[str, str, date, str, tuple[str, ...]]] = field(default_factory=dict)
    # Every party any of its events named as a party (signed, added, removed, given a transfer).
    ever_named: set[str] = field(default_factory=set)

    def view(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "status": self.status,
            "document_number": self.document_number,
            "signed_on": self.signed_on,
            "term": self.term,
            "parties": {pid: (self.names[pid], role) for pid, role in self.parties.items()},
            "obligations": {
                oid: (o.title, o.lead, o.supporters, o.cadence, o.status, o.inherited)
                for oid, o in self.obligations.items()
            },
            "reports": dict(self.reports),
            "closure": self.closure,
            "amendments": self.amendments,
            "former_parties": dict(self.former),
        }


def handler_view(state: AgreementState) -> dict[str, Any]:
    return {
        "version": state.version,
        "status": state.status,
        "document_number": state.document_number,
        "signed_on": state.signed_on,
        "term": (state.term.start, state.term.end),
        "parties": {pid: (p.name, str(p.role)) for pid, p in state.parties.items()},
        "obligations": {
            oid: (
                o.obligation.title,
                o.obligation.lead_party_id,
                tuple(o.obligation.supporting_party_ids),
                str(o.obligation.cadence),
                o.status,
                tuple((i.from_party_id, i.to_party_id, i.effective_on, i.legal_basis) for i in o.inherited),
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
        "former_parties": {
            pid: (f.party.name, str(f.party.role), f.effective_on, f.legal_basis, f.successor_party_ids)
            for pid, f in state.former_parties.items()
        },
    }


@dataclass(frozen=True)
class MSuccession:
    effective_on: date
    legal_basis: str
    successor: str
    # (agreement_id, obligation_id, successor), as the command listed them
    named: tuple[tuple[str, str, str], ...] = ()

    def successor_for(self, agreement_id: str, obligation_id: str) -> str:
        return next((s for a, o, s in self.named if (a, o) == (agreement_id, obligation_id)), self.successor)

    def successors(self) -> list[str]:
        return list(dict.fromkeys([self.successor, *(s for _, _, s in self.named)]))


@dataclass
class MParty:
    version: int
    name: str
    kind: str
    registered_from: str | None
    succession: MSuccession | None = None

    def view(self) -> tuple[Any, ...]:
        return (self.version, self.name, self.kind, self.registered_from, self.succession)


def party_view(state: PartyState) -> tuple[Any, ...]:
    succession = state.succession
    return (
        state.version,
        state.name,
        state.kind,
        state.registered_from_agreement_id,
        None
        if succession is None
        else MSuccession(
            succession.effective_on,
            succession.legal_basis,
            succession.successor_party_id,
            tuple(
                (s.agreement_id, s.obligation_id, s.successor_party_id)
                for s in succession.obligation_successors
            ),
        ),
    )


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
        self.agreements: dict[str, MAgreement] = {}  # in the order they were signed
        self.directory: dict[str, MParty] = {}
        # The succession manager's queue: party -> its request, a number that grows with each queuing.
        self.queue: dict[str, int] = {}
        self._requests = itertools.count(1)

    # -- agreements --------------------------------------------------------------------------------

    def ceased_on(self, party_id: str) -> date | None:
        entry = self.directory.get(party_id)
        return entry.succession.effective_on if entry is not None and entry.succession else None

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
            # Decision 16: a party that ceased on or before the signing date cannot sign.
            and not any(
                (ceased := self.ceased_on(pid)) is not None and body["signed_on"] >= ceased
                for pid in party_ids
            )
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

    def signed(self, agreement_id: str, body: dict[str, Any]) -> tuple[MAgreement, list[str]]:
        """The agreement, and the parties its signing registered in the directory."""
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
            names={p["party_id"]: p["name"] for p in body["parties"]},
            ever_named={p["party_id"] for p in body["parties"]},
        )
        self.agreements[agreement_id] = agreement
        registered = []
        for party in body["parties"]:
            pid = party["party_id"]
            if pid not in self.directory:
                self.directory[pid] = MParty(1, party["name"], "unclassified", agreement_id)
                registered.append(pid)
            elif self.directory[pid].succession is not None:
                # Ceased after the signing date: this agreement too must get its transfer.
                self.enqueue(pid)
        return agreement, registered

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
        # Decision 16: a party that has ceased cannot join an agreement.
        if any(self.ceased_on(pid) is not None for pid in joining(body)):
            return Rejected, None
        after.version += 1
        after.amendments = (*after.amendments, body["document_number"])
        return None, after

    def amended(self, agreement_id: str, body: dict[str, Any], after: MAgreement) -> list[str]:
        """The amendment is in; the parties it registered in the directory."""
        self.agreements[agreement_id] = after
        registered = []
        for change in body["changes"]:
            party = change.get("party") if change["op"] == "add_party" else None
            if party is not None and party["party_id"] not in self.directory:
                self.directory[party["party_id"]] = MParty(1, party["name"], "unclassified", agreement_id)
                registered.append(party["party_id"])
        return registered

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
            revised = replace(
                current,
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
            a.names[party["party_id"]] = party["name"]
            a.ever_named.add(party["party_id"])
            return True
        if op == "remove_party":
            pid = change["party_id"]
            if pid not in a.parties:
                return False
            if any(o.status == "active" and o.names(pid) for o in a.obligations.values()):
                return False
            del a.parties[pid]
            del a.names[pid]
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
        first, last = period_span(body["period"])
        if not ob.names(body["party_id"]):
            # Decision 18: a party that ceased and passed the obligation on still reports the
            # periods that began before it ceased, and no other.
            ceded = ob.ceded_by(body["party_id"])
            if ceded is None or first >= ceded[2]:
                return Rejected
        if period_form(body["period"]) != PERIOD_FORM[ob.cadence]:
            return Rejected
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

    # -- the directory (decision 15) ---------------------------------------------------------------

    def register(self, body: dict[str, Any]) -> type[DomainError] | None:
        if body["party_id"] in self.directory:
            return Conflict
        if body["kind"] == "unclassified" or body["province"] not in PROVINCES:
            return Rejected
        self.directory[body["party_id"]] = MParty(1, body["name"], body["kind"], None)
        return None

    def rename(self, party_id: str, body: dict[str, Any]) -> type[DomainError] | None:
        entry = self.directory.get(party_id)
        if entry is None:
            return NotFound
        if entry.succession is not None:
            return Conflict
        if body["name"] == entry.name:
            return Rejected
        entry.version += 1
        entry.name = body["name"]
        return None

    # -- successions (decision 17) -----------------------------------------------------------------

    def naming(self, party_id: str) -> list[MAgreement]:
        """The agreements that ever named the party, in signing order."""
        return [a for a in self.agreements.values() if party_id in a.ever_named]

    def earliest_signing(self, party_id: str) -> date | None:
        return min((a.signed_on for a in self.naming(party_id)), default=None)

    def _successor_ok(self, successor: str, party_id: str) -> bool:
        """Registered, not the party itself, and not ceased (a successor that ceased, its chain
        leading back to the party or not, is refused: the body that holds its functions now
        must be named)."""
        entry = self.directory.get(successor)
        return successor != party_id and entry is not None and entry.succession is None

    def succession(self, party_id: str, body: dict[str, Any]) -> type[DomainError] | None:
        entry = self.directory.get(party_id)
        if entry is None:
            return NotFound
        if entry.succession is not None:
            return Conflict
        ok = self._successor_ok(body["successor_party_id"], party_id)
        seen = set()
        for named in body["obligation_successors"]:
            key = (named["agreement_id"], named["obligation_id"])
            agreement = self.agreements.get(named["agreement_id"])
            ok = ok and key not in seen and agreement is not None and party_id in agreement.ever_named
            if ok:
                assert agreement is not None
                ob = agreement.obligations.get(named["obligation_id"])
                ok = ob is not None and ob.names(party_id)
            ok = ok and self._successor_ok(named["successor_party_id"], party_id)
            seen.add(key)
        earliest = self.earliest_signing(party_id)
        if not ok or (earliest is not None and body["effective_on"] < earliest):
            return Rejected
        entry.version += 1
        entry.succession = MSuccession(
            body["effective_on"],
            body["legal_basis"],
            body["successor_party_id"],
            tuple(
                (n["agreement_id"], n["obligation_id"], n["successor_party_id"])
                for n in body["obligation_successors"]
            ),
        )
        self.enqueue(party_id)
        return None

    def enqueue(self, party_id: str) -> None:
        self.queue[party_id] = next(self._requests)

    def run_pending(self) -> list[tuple[str, int, int]]:
        """One run of the manager: what was queued when it began, in queue order."""
        done = []
        for party_id, request in sorted(self.queue.items(), key=lambda item: item[1]):
            done.append((party_id, *self.carry(party_id)))
            if self.queue.get(party_id) == request:
                del self.queue[party_id]
        return done

    def carry(self, party_id: str) -> tuple[int, int]:
        """(agreements transferred, agreements that needed nothing)."""
        entry = self.directory.get(party_id)
        if entry is None or entry.succession is None:
            return 0, 0
        transferred = unchanged = 0
        for agreement in self.naming(party_id):
            if self.transfer(agreement, party_id, entry.succession):
                transferred += 1
            else:
                unchanged += 1
        return transferred, unchanged

    def transfer(self, a: MAgreement, old: str, succession: MSuccession) -> bool:
        if a.status == "closed" or old not in a.parties:
            return False
        moved = {
            oid: succession.successor_for(a.agreement_id, oid)
            for oid, o in a.obligations.items()
            if o.names(old)
        }
        successors = list(dict.fromkeys([succession.successor, *moved.values()]))
        role = a.parties.pop(old)
        name = a.names.pop(old)
        for successor in successors:
            if successor not in a.parties:
                a.parties[successor] = "member"
                a.names[successor] = self.directory[successor].name
            if role == "lead" and successor == succession.successor:
                a.parties[successor] = "lead"
        for oid, successor in moved.items():
            ob = a.obligations[oid]
            lead = successor if ob.lead == old else ob.lead
            supporters = (successor if s == old else s for s in ob.supporters)
            a.obligations[oid] = replace(
                ob,
                lead=lead,
                supporters=tuple(dict.fromkeys(s for s in supporters if s != lead)),
                inherited=(*ob.inherited, (old, successor, succession.effective_on, succession.legal_basis)),
            )
        a.former[old] = (name, role, succession.effective_on, succession.legal_basis, tuple(successors))
        a.ever_named.update(successors)
        a.version += 1
        # A successor that has ceased since carries the agreement on by its own succession.
        for successor in succession.successors():
            if self.directory[successor].succession is not None:
                self.enqueue(successor)
        return True


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
def sign_bodies(
    draw: st.DrawFn,
    existing: tuple[tuple[str, str, str, date], ...],
    ceased: tuple[tuple[str, date], ...] = (),
) -> dict[str, Any]:
    """`existing`: (agreement_id, document_number, locality, signed_on) of the agreements signed so
    far; `ceased`: (party_id, effective_on) of the parties that have ceased."""
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
    signing_ceased = [(pid, day) for pid, day in ceased if pid in party_ids]
    if signing_ceased and not usually(draw, 3):
        # A party that ceased signs on the day it ceased (refused) or the day before (an older
        # agreement registered late, carried to its successor by the manager).
        _, day = pick(draw, signing_ceased)
        body["signed_on"] = signed_on = day - timedelta(days=draw(st.integers(0, 1)))
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


def joining(body: dict[str, Any]) -> list[str]:
    """The parties an amendment body adds."""
    return [c["party"]["party_id"] for c in body["changes"] if c["op"] == "add_party"]


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


def period_near(form: str, day: date, shift: int) -> str:
    """The period of that form that `day` falls in, moved by `shift` periods."""
    per_year = {"year": 1, "half": 2, "quarter": 4, "month": 12}[form]
    index = day.year * per_year + (day.month - 1) * per_year // 12 + shift
    year, number = divmod(index, per_year)
    if form == "year":
        return f"{year}"
    if form == "month":
        return f"{year}-{number + 1:02d}"
    return f"{year}-{'H' if form == 'half' else 'Q'}{number + 1}"


@st.composite
def report_bodies(draw: st.DrawFn, a: MAgreement) -> dict[str, Any]:
    active = sorted(oid for oid, o in a.obligations.items() if o.status == "active")
    inherited = [oid for oid in active if a.obligations[oid].inherited]
    if inherited and usually(draw, 4):
        oid = pick(draw, inherited)
    else:
        oid = (
            pick(draw, active) if active and usually(draw) else pick(draw, (*a.obligations, *ALL_OBLIGATIONS))
        )
    ob = a.obligations.get(oid)
    # Its holders now, and the parties that ceased and passed it on (late reports, decision 18).
    holders = (ob.lead, *ob.supporters) if ob else ()
    ceders = tuple(i[0] for i in ob.inherited) if ob else ()
    if ceders and usually(draw, 4):
        party = pick(draw, ceders)
    else:
        party = pick(draw, holders) if holders and usually(draw) else pick(draw, DIRECTORY_PARTIES)
    form = (
        PERIOD_FORM[ob.cadence] if ob and usually(draw) else pick(draw, ("year", "half", "quarter", "month"))
    )
    first_year, last_year = a.term[0].year, a.term[1].year
    ceded = ob.ceded_by(party) if ob else None
    year = (
        draw(st.integers(first_year, last_year))
        if usually(draw)
        else pick(draw, (first_year - 1, last_year + 1))
    )
    days = draw(st.integers(0, 900)) if usually(draw) else -draw(st.integers(1, 60))
    period = period_of(draw, form, year)
    if ceded is not None and usually(draw, 4):
        # Around the day it ceased: the period it falls in (which begins on it, when it is the
        # first of a period), the one before, the one after.
        period = period_near(form, ceded[2], pick(draw, (0, -1, 0, 1)))
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


@st.composite
def register_bodies(draw: st.DrawFn, model: Model) -> dict[str, Any]:
    unregistered = [p for p in DIRECTORY_PARTIES if p not in model.directory]
    pid = pick(draw, unregistered) if unregistered and usually(draw) else pick(draw, DIRECTORY_PARTIES)
    kind = pick(draw, KINDS) if usually(draw, 8) else "unclassified"
    province = pick(draw, PROVINCES) if usually(draw, 8) else "Atlantis"
    return {"party_id": pid, "name": f"Đơn vị {pid}", "kind": kind, "province": province}


@st.composite
def rename_bodies(draw: st.DrawFn, current: str | None) -> dict[str, Any]:
    name = pick(draw, ("Tên mới một", "Tên mới hai")) if current is None or usually(draw) else current
    return {
        "name": name,
        "effective_on": draw(DATES),
        "legal_basis": pick(draw, (None, *LEGAL_BASES)),
    }


@st.composite
def directory_targets(draw: st.DrawFn, model: Model) -> str:
    """A party to send a directory command to: mostly one still active in the directory that
    is a party of an active agreement, now and then a ceased one or one the directory does not hold."""
    active = [p for p, e in model.directory.items() if e.succession is None]
    holders = [
        p for p in active if any(a.status == "active" and p in a.parties for a in model.agreements.values())
    ]
    if holders and usually(draw, 4):
        return pick(draw, holders)
    if active and usually(draw):
        return pick(draw, active)
    return pick(draw, (*DIRECTORY_PARTIES, UNKNOWN_PARTY))


@st.composite
def succession_bodies(draw: st.DrawFn, model: Model, pid: str) -> dict[str, Any]:
    others = sorted(p for p in model.directory if p != pid)
    active = [p for p in others if model.directory[p].succession is None]

    def successor(besides: str | None = None) -> str:
        if active and usually(draw, 8):
            return pick(draw, [p for p in active if p != besides] or active)
        # The party itself, one the directory does not hold, or one that ceased (for a party
        # that ceased into `pid`, a cycle).
        return pick(draw, (pid, UNKNOWN_PARTY, *others))

    earliest = model.earliest_signing(pid)
    if earliest is not None and not usually(draw, 5):  # on the edge: its earliest signing, or the day before
        effective_on = earliest - timedelta(days=draw(st.integers(0, 1)))
    elif earliest is not None and not usually(draw, 10):
        effective_on = earliest - timedelta(days=draw(st.integers(2, 400)))
    else:
        # Mostly while one of its agreements runs, so that reports on both sides of it are possible.
        low = earliest or FIRST_DAY
        terms = [a.term for a in model.naming(pid) if a.status == "active"]
        start, end = pick(draw, terms) if terms and usually(draw, 4) else (low, LAST_DAY)
        start = max(start, low)
        effective_on = draw(st.dates(min_value=start, max_value=max(start, end)))
        if usually(draw, 4):
            # Reorganisations take effect on the first of a month (1 July 2025), where periods
            # begin: the edge of the late-report rule. The first of its year, half or quarter.
            months = pick(draw, (12, 6, 3))
            first = effective_on.replace(month=1 + months * ((effective_on.month - 1) // months), day=1)
            effective_on = max(first, low)
    default = successor()
    named: list[dict[str, Any]] = []
    if not usually(draw, 3):  # one function of the body goes elsewhere
        held = [
            (a.agreement_id, oid)
            for a in model.naming(pid)
            for oid, o in a.obligations.items()
            if o.names(pid)
        ]
        for _ in range(draw(st.integers(1, 2))):
            if held and usually(draw, 8):
                aid, oid = pick(draw, held)
            else:  # an agreement that never named it, or an obligation it has not or pid does not hold
                aid = pick(draw, (*model.agreements, UNKNOWN_AGREEMENT))
                oid = pick(draw, ALL_OBLIGATIONS)
            named.append(
                {"agreement_id": aid, "obligation_id": oid, "successor_party_id": successor(default)}
            )
        if not usually(draw, 10):
            named.append(named[0])  # listed twice
    return {
        "effective_on": effective_on,
        "legal_basis": pick(draw, LEGAL_BASES),
        "successor_party_id": default,
        "obligation_successors": named,
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
        self.registrations_checked: dict[str, int] = {}

    def teardown(self) -> None:
        self.loop.close()

    # -- driving the handler -------------------------------------------------------------------

    def event_counts(self) -> tuple[int, int]:
        """Events on the agreements' streams, and on the directory's (`party/<id>`)."""
        counts = [0, 0]
        for stream_id, stream in self.store.streams.items():
            counts[is_party_subject(stream_id)] += len(stream)
        return counts[0], counts[1]

    def load(self, agreement_id: str) -> AgreementState:
        state = self.loop.run_until_complete(self.registry.agreements.get(agreement_id)).state
        assert state is not None
        return state

    def load_party(self, party_id: str) -> PartyState:
        state = self.loop.run_until_complete(self.registry.parties.get(party_id)).state
        assert state is not None
        return state

    def execute(
        self,
        command: Command | PartyCommand,
        predicted: type[DomainError] | None,
        stream_id: str | None = None,
        expected_version: int | None = None,
        *,
        registered: int = 0,
    ) -> CommandResult | PartyResult | None:
        """Run one command; check that the registry accepts or refuses it as the model said, and
        that it wrote one event (on its agreement's stream, or its party's) and, for a signing,
        the `registered` parties' registrations, or nothing at all."""
        before = self.event_counts()
        context = CommandContext(
            Caller.in_process("model-test"), "correlation", "causation", expected_version
        )
        result: CommandResult | PartyResult | None = None
        error: DomainError | None = None
        directory = isinstance(command, RegisterParty | RenameParty | RecordSuccession)
        try:
            if isinstance(command, RegisterParty | RenameParty | RecordSuccession):
                party_id = command.party_id if isinstance(command, RegisterParty) else stream_id
                assert party_id is not None
                result = self.loop.run_until_complete(
                    self.registry.bus.run_directory(command, context, party_id)
                )
            else:
                result = self.loop.run_until_complete(self.registry.bus.run(command, context, stream_id))
        except DomainError as caught:
            error = caught
        verdict = predicted.__name__ if predicted else "accepted"
        note(f"{type(command).__name__} on {stream_id} (If-Match {expected_version}): model says {verdict}")
        note(f"  handler: {error!r}" if error else f"  handler: {result!r}")
        event(f"{type(command).__name__}: {verdict}")
        if predicted is None:
            assert error is None, f"the contract accepts this command but the handler refused it: {error!r}"
            assert result is not None
            expected = (before[0], before[1] + 1) if directory else (before[0] + 1, before[1] + registered)
            assert self.event_counts() == expected
            return result
        assert error is not None, f"the contract refuses this command ({verdict}) but the handler accepted it"
        assert type(error) is predicted, f"expected {verdict}, the handler raised {error!r}"
        assert self.event_counts() == before, "a refused command wrote an event"
        return None

    def check_agreement(self, agreement_id: str, result: CommandResult | None = None) -> None:
        expected = self.model.agreements[agreement_id]
        if result is not None:
            assert result.agreement_id == agreement_id
            assert result.version == expected.version
            assert result.status == expected.status
        state = self.load(agreement_id)
        assert handler_view(state) == expected.view()
        check_invariants(state)

    def check_party(self, party_id: str, result: PartyResult | None = None) -> None:
        expected = self.model.directory[party_id]
        if result is not None:
            assert (result.party_id, result.version) == (party_id, expected.version)
            assert result.status == ("ceased" if expected.succession else "active")
        assert party_view(self.load_party(party_id)) == expected.view()

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

    @initialize(data=st.data())
    def start_with_a_few_agreements_and_successors(self, data: st.DataObject) -> None:
        """Successions need agreements before them and successors in the directory: most runs
        start with some, so that their steps go to successions, transfers and what follows."""
        for _ in range(data.draw(st.integers(0, 3), label="signings first")):
            self.sign(data)
        for pid in data.draw(st.sampled_from(((), ("p6",), ("p6", "p7"))), label="successors first"):
            body = {"party_id": pid, "name": f"Đơn vị {pid}", "kind": "department", "province": "Phú Thọ"}
            assert self.model.register(body) is None
            result = self.execute(RegisterParty.model_validate(body), None, pid)
            assert isinstance(result, PartyResult)
            self.check_party(pid, result)

    @rule(data=st.data())
    def sign(self, data: st.DataObject) -> None:
        existing = tuple(
            (a.agreement_id, a.document_number, a.locality, a.signed_on)
            for a in self.model.agreements.values()
        )
        ceased = tuple(
            (pid, p.succession.effective_on) for pid, p in self.model.directory.items() if p.succession
        )
        body = data.draw(sign_bodies(existing, ceased), label="sign")
        predicted = self.model.sign(body)
        unknown = [p["party_id"] for p in body["parties"] if p["party_id"] not in self.model.directory]
        result = self.execute(SignAgreement.model_validate(body), predicted, registered=len(unknown))
        if result is not None:
            assert isinstance(result, CommandResult) and result.version == 1
            _, registered = self.model.signed(result.agreement_id, body)
            assert registered == unknown
            self.check_agreement(result.agreement_id, result)
            for party in body["parties"]:
                self.check_party(party["party_id"])

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
        unknown = list(dict.fromkeys(p for p in joining(body) if p not in self.model.directory))
        result = self.execute(
            AmendAgreement.model_validate(body),
            predicted,
            target,
            expected_version[pin],
            registered=len(unknown),
        )
        if result is not None:
            assert after is not None and isinstance(result, CommandResult)
            assert self.model.amended(target, body, after) == unknown
            self.check_agreement(target, result)
            for pid in unknown:
                self.check_party(pid)

    @precondition(has_agreements)
    @rule(data=st.data())
    def report(self, data: st.DataObject) -> None:
        transferred = sorted(
            aid for aid, a in self.model.agreements.items() if a.former and a.status == "active"
        )
        if transferred and data.draw(st.integers(0, 3), label="on a transferred agreement?") < 3:
            a = self.model.agreements[data.draw(st.sampled_from(transferred), label="agreement")]
            target = a.agreement_id
        else:
            a, target = self.pick_agreement(data)
        body = data.draw(report_bodies(a), label="report")
        predicted = self.model.report(target, body)
        result = self.execute(ReportProgress.model_validate(body), predicted, target)
        if result is not None:
            assert isinstance(result, CommandResult)
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
            assert isinstance(result, CommandResult)
            self.model.closed(target, body)
            self.check_agreement(target, result)

    @rule(start=DATES, days=st.integers(1, 800))
    def reversed_terms_never_become_commands(self, start: date, days: int) -> None:
        reversed_term = {"start": start.isoformat(), "end": (start - timedelta(days=days)).isoformat()}
        with pytest.raises(ValidationError):
            ChangeTerm.model_validate({"op": "change_term", "term": reversed_term})
        with pytest.raises(ValidationError):
            SignAgreement.model_validate({**HOA_BINH, "term": reversed_term})

    @precondition(lambda self: len(self.model.directory) < len(DIRECTORY_PARTIES))
    @rule(data=st.data())
    def register_party(self, data: st.DataObject) -> None:
        body = data.draw(register_bodies(self.model), label="register")
        predicted = self.model.register(body)
        result = self.execute(RegisterParty.model_validate(body), predicted, body["party_id"])
        if result is not None:
            assert isinstance(result, PartyResult)
            self.check_party(body["party_id"], result)

    @precondition(has_agreements)
    @rule(data=st.data())
    def rename_party(self, data: st.DataObject) -> None:
        pid = data.draw(directory_targets(self.model), label="party")
        entry = self.model.directory.get(pid)
        body = data.draw(rename_bodies(entry.name if entry else None), label="rename")
        predicted = self.model.rename(pid, body)
        result = self.execute(RenameParty.model_validate(body), predicted, pid)
        if result is not None:
            assert isinstance(result, PartyResult)
            self.check_party(pid, result)

    @precondition(has_agreements)
    @rule(data=st.data())
    def record_succession(self, data: st.DataObject) -> None:
        pid = data.draw(directory_targets(self.model), label="party")
        body = data.draw(succession_bodies(self.model, pid), label="succession")
        predicted = self.model.succession(pid, body)
        result = self.execute(RecordSuccession.model_validate(body), predicted, pid)
        if result is not None:
            assert isinstance(result, PartyResult)
            self.check_party(pid, result)

    @rule(
        carry=st.one_of(st.none(), st.none(), st.none(), st.sampled_from((*DIRECTORY_PARTIES, UNKNOWN_PARTY)))
    )
    def run_the_succession_manager(self, carry: str | None) -> None:
        """Its run over the queue, as the registry's loop does, or (carry=<party>) one party's
        succession carried whether it is queued or not (again, it finds nothing new to do)."""
        if carry is None:
            expected = [Carried(*carried) for carried in self.model.run_pending()]
            done = self.loop.run_until_complete(self.registry.successions.run_pending())
        else:
            expected = [Carried(carry, *self.model.carry(carry))]
            done = [self.loop.run_until_complete(self.registry.successions.carry(carry))]
        note(f"{'run_pending' if carry is None else f'carry({carry})'}: model {expected}, manager {done}")
        event(
            f"{'run_pending' if carry is None else 'carry'}: {sum(c.transferred for c in expected)} transferred"
        )
        assert done == expected
        self.check_every_agreement()

    def check_every_agreement(self) -> None:
        """After the manager: every agreement as the model has it (closed ones and ones the party
        left untouched), and the directory unchanged."""
        for agreement_id in self.model.agreements:
            self.check_agreement(agreement_id)
        for party_id in self.model.directory:
            self.check_party(party_id)

    @invariant()
    def streams_are_the_models(self) -> None:
        """Each agreement's stream holds as many events as the model's version of it and each
        party's as many as its directory entry (so a command never writes to another stream),
        every party stream starts with the party's one registration, and the manager's queue is
        the model's."""
        agreements: dict[str, int] = {}
        parties: dict[str, int] = {}
        for stream_id, stream in self.store.streams.items():
            if is_party_subject(stream_id):
                parties[party_id_of(stream_id)] = len(stream)
                # Events never change: each is looked at once.
                for stored in stream[self.registrations_checked.get(stream_id, 0) :]:
                    registration = isinstance(stored.envelope().party_event(), PartyRegistered)
                    assert registration is (stored.sequence == 1), (
                        f"{stream_id} is registered at {stored.sequence}"
                    )
                self.registrations_checked[stream_id] = len(stream)
            else:
                agreements[stream_id] = len(stream)
        assert agreements == {aid: a.version for aid, a in self.model.agreements.items()}
        assert parties == {pid: p.version for pid, p in self.model.directory.items()}
        pending = self.loop.run_until_complete(self.store.pending_successions())
        assert [p.party_id for p in pending] == sorted(self.model.queue, key=self.model.queue.__getitem__)


def check_invariants(state: AgreementState) -> None:
    """What must hold of every agreement the registry accepted, whatever got it there."""
    leads = [pid for pid, p in state.parties.items() if str(p.role) == "lead"]
    assert len(leads) == 1
    # A succession may leave one party (the predecessor's successor was the other party).
    assert len(state.parties) >= 2 or state.former_parties
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
            # Successions need signings before them and the manager after: longer runs than the
            # agreement rules alone needed (200 x 30), and about as long a test.
            max_examples=100,
            stateful_step_count=50,
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
