"""An agreement's state as JSON, one codec for each shape it is written in. Pure.

- `agreement_json` / `agreement_from_json`: the contract's shape (docs/CONTRACT.md), which the
  registry answers at `GET /v1/agreements/{id}` (services/registry/entrypoints/views.py) and the
  projections store as their document, with two derived members added after `locality`
  (services/projections/readmodel/document.py).
- The snapshot's shape (services/registry/service_layer/snapshots.py) differs on purpose:
  mappings as [key, value] pairs, in the fold's order, and the obligation nested. It is built
  from the same parts: `inheritance_json`, `report_json`, `closure_json` and their inverses.

A new field of the state is written here, once per shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from types import MappingProxyType
from typing import Any

from coordreg_contracts.common import LegalBasis, Obligation, Party, Term

from services.agreement.state import (
    AgreementState,
    Closure,
    FormerParty,
    Inheritance,
    ObligationState,
    Report,
)

# Members of an obligation's entry that are the state's, not the obligation's own.
_OBLIGATION_STATE_KEYS = frozenset({"status", "inherited"})
# Members of a former party's entry that are the succession's, not the party's own.
_FORMER_PARTY_KEYS = frozenset({"effective_on", "legal_basis", "successor_party_ids"})


def inheritance_json(i: Inheritance) -> dict[str, Any]:
    return {
        "from_party_id": i.from_party_id,
        "to_party_id": i.to_party_id,
        "effective_on": i.effective_on.isoformat(),
        "legal_basis": i.legal_basis,
    }


def inheritance_from_json(d: Mapping[str, Any]) -> Inheritance:
    return Inheritance(
        d["from_party_id"], d["to_party_id"], date.fromisoformat(d["effective_on"]), d["legal_basis"]
    )


def report_json(r: Report) -> dict[str, Any]:
    return {
        "obligation_id": r.obligation_id,
        "party_id": r.party_id,
        "period": r.period,
        "status": r.status,
        "completion_percent": r.completion_percent,
        "reported_on": r.reported_on.isoformat(),
        "sequence": r.sequence,
    }


def report_from_json(d: Mapping[str, Any]) -> Report:
    return Report(
        obligation_id=d["obligation_id"],
        party_id=d["party_id"],
        period=d["period"],
        status=d["status"],
        completion_percent=d["completion_percent"],
        reported_on=date.fromisoformat(d["reported_on"]),
        sequence=d["sequence"],
    )


def closure_json(c: Closure) -> dict[str, Any]:
    return {
        "closed_on": c.closed_on.isoformat(),
        "outcome": c.outcome,
        "summary": c.summary,
        "successor_agreement_id": c.successor_agreement_id,
    }


def closure_from_json(d: Mapping[str, Any]) -> Closure:
    return Closure(
        date.fromisoformat(d["closed_on"]), d["outcome"], d["summary"], d["successor_agreement_id"]
    )


def obligation_json(o: ObligationState) -> dict[str, Any]:
    """An obligation as the contract lists it: its own members, its status, how it was inherited."""
    return {**o.obligation.model_dump(mode="json"), "status": o.status, "inherited": inherited_json(o)}


def inherited_json(o: ObligationState) -> list[dict[str, Any]]:
    return [inheritance_json(i) for i in o.inherited]


def former_party_json(f: FormerParty) -> dict[str, Any]:
    """A party that ceased, as the contract lists it: the party's members, then its succession's."""
    return {
        **f.party.model_dump(mode="json"),
        "effective_on": f.effective_on.isoformat(),
        "legal_basis": f.legal_basis,
        "successor_party_ids": list(f.successor_party_ids),
    }


def agreement_json(state: AgreementState, derived: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The contract's shape of an agreement; `derived` members (the read model's) follow `locality`."""
    return {
        "agreement_id": state.agreement_id,
        "version": state.version,
        "status": state.status,
        "document_number": state.document_number,
        "kind": state.kind,
        "title": state.title,
        "locality": state.locality,
        **(derived or {}),
        "signed_on": state.signed_on.isoformat(),
        "term": state.term.model_dump(mode="json"),
        "parties": [p.model_dump(mode="json") for p in state.parties.values()],
        "legal_basis": [b.model_dump(mode="json") for b in state.legal_basis],
        "obligations": [obligation_json(o) for o in state.obligations.values()],
        "former_parties": [former_party_json(f) for f in state.former_parties.values()],
        "parent_agreement_id": state.parent_agreement_id,
        "amendments": list(state.amendment_documents),
        "reports": [report_json(r) for r in state.reports.values()],
        "closure": None if state.closure is None else closure_json(state.closure),
    }


def agreement_from_json(doc: Mapping[str, Any]) -> AgreementState:
    """The state `agreement_json` wrote; members it does not know (derived ones) are ignored. A
    document written before the party directory has no `former_parties` nor obligations'
    `inherited`, and reads back as a state without them."""
    obligations = {}
    for raw in doc["obligations"]:
        fields = {k: v for k, v in raw.items() if k not in _OBLIGATION_STATE_KEYS}
        inherited = tuple(inheritance_from_json(i) for i in raw.get("inherited", ()))
        obligations[raw["obligation_id"]] = ObligationState(
            Obligation.model_validate(fields), raw["status"], inherited
        )
    former = {}
    for raw in doc.get("former_parties", ()):
        party = {k: v for k, v in raw.items() if k not in _FORMER_PARTY_KEYS}
        former[raw["party_id"]] = FormerParty(
            Party.model_validate(party),
            date.fromisoformat(raw["effective_on"]),
            raw["legal_basis"],
            tuple(raw["successor_party_ids"]),
        )
    reports = {(r["obligation_id"], r["party_id"], r["period"]): report_from_json(r) for r in doc["reports"]}
    closure = doc.get("closure")
    return AgreementState(
        agreement_id=doc["agreement_id"],
        version=doc["version"],
        document_number=doc["document_number"],
        kind=doc["kind"],
        title=doc["title"],
        locality=doc["locality"],
        signed_on=date.fromisoformat(doc["signed_on"]),
        term=Term.model_validate(doc["term"]),
        parties=MappingProxyType({p["party_id"]: Party.model_validate(p) for p in doc["parties"]}),
        legal_basis=tuple(LegalBasis.model_validate(b) for b in doc["legal_basis"]),
        obligations=MappingProxyType(obligations),
        parent_agreement_id=doc["parent_agreement_id"],
        status=doc["status"],
        closure=None if closure is None else closure_from_json(closure),
        reports=MappingProxyType(reports),
        amendment_documents=tuple(doc["amendments"]),
        former_parties=MappingProxyType(former),
    )
