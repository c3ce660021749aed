"""The read model's agreement document: the `state` column of `agreements`, served by
`GET /v1/agreements/{id}` of the projections, and read back as the snapshot the next event is
folded onto. The projections own this shape (the registry answers with its own view); a change
to it is a read-model migration or a rebuild (`coordreg-audit rebuild` + `swap`).

`locality_now` and `document_type` are derived (from the locality and the document number),
not state: `from_document` ignores them. A document written before the party directory has no
`former_parties` nor obligations' `inherited`, and reads back as a state without them."""

from __future__ import annotations

from datetime import date
from types import MappingProxyType
from typing import Any

from coordreg_contracts.common import LegalBasis, Obligation, Party, Term

from services.agreement.document_numbers import parse
from services.agreement.state import (
    AgreementState,
    Closure,
    FormerParty,
    Inheritance,
    ObligationState,
    Report,
)
from services.projections.readmodel.locality import locality_now

# Keys of an obligation's entry that are the read model's, not the obligation's own.
_OBLIGATION_STATE_KEYS = frozenset({"status", "inherited"})


def to_document(state: AgreementState) -> dict[str, Any]:
    return {
        "agreement_id": state.agreement_id,
        "version": state.version,
        "status": state.status,
        "document_number": state.document_number,
        "kind": state.kind,
        "title": state.title,
        "locality": state.locality,
        "locality_now": locality_now(state.locality),
        "document_type": parse(state.document_number).document_type,
        "signed_on": state.signed_on.isoformat(),
        "term": state.term.model_dump(mode="json"),
        "parties": [p.model_dump(mode="json") for p in state.parties.values()],
        "legal_basis": [b.model_dump(mode="json") for b in state.legal_basis],
        "obligations": [
            {**o.obligation.model_dump(mode="json"), "status": o.status, "inherited": _inherited(o)}
            for o in state.obligations.values()
        ],
        "former_parties": [
            {
                **former.party.model_dump(mode="json"),
                "effective_on": former.effective_on.isoformat(),
                "legal_basis": former.legal_basis,
                "successor_party_ids": list(former.successor_party_ids),
            }
            for former in state.former_parties.values()
        ],
        "parent_agreement_id": state.parent_agreement_id,
        "amendments": list(state.amendment_documents),
        "reports": [
            {
                "obligation_id": r.obligation_id,
                "party_id": r.party_id,
                "period": r.period,
                "status": r.status,
                "completion_percent": r.completion_percent,
                "reported_on": r.reported_on.isoformat(),
                "sequence": r.sequence,
            }
            for r in state.reports.values()
        ],
        "closure": None
        if state.closure is None
        else {
            "closed_on": state.closure.closed_on.isoformat(),
            "outcome": state.closure.outcome,
            "summary": state.closure.summary,
            "successor_agreement_id": state.closure.successor_agreement_id,
        },
    }


def _inherited(item: ObligationState) -> list[dict[str, Any]]:
    return [
        {
            "from_party_id": i.from_party_id,
            "to_party_id": i.to_party_id,
            "effective_on": i.effective_on.isoformat(),
            "legal_basis": i.legal_basis,
        }
        for i in item.inherited
    ]


def _former_party(raw: dict[str, Any]) -> FormerParty:
    party = {k: v for k, v in raw.items() if k not in ("effective_on", "legal_basis", "successor_party_ids")}
    return FormerParty(
        Party.model_validate(party),
        date.fromisoformat(raw["effective_on"]),
        raw["legal_basis"],
        tuple(raw["successor_party_ids"]),
    )


def from_document(doc: dict[str, Any]) -> AgreementState:
    obligations = {}
    for raw in doc["obligations"]:
        fields = {k: v for k, v in raw.items() if k not in _OBLIGATION_STATE_KEYS}
        inherited = tuple(
            Inheritance(
                i["from_party_id"], i["to_party_id"], date.fromisoformat(i["effective_on"]), i["legal_basis"]
            )
            for i in raw.get("inherited", ())
        )
        obligations[raw["obligation_id"]] = ObligationState(
            Obligation.model_validate(fields), raw["status"], inherited
        )
    former = {f["party_id"]: _former_party(f) for f in doc.get("former_parties", ())}
    reports = {
        (r["obligation_id"], r["party_id"], r["period"]): Report(
            obligation_id=r["obligation_id"],
            party_id=r["party_id"],
            period=r["period"],
            status=r["status"],
            completion_percent=r["completion_percent"],
            reported_on=date.fromisoformat(r["reported_on"]),
            sequence=r["sequence"],
        )
        for r in doc["reports"]
    }
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
        closure=None
        if closure is None
        else Closure(
            date.fromisoformat(closure["closed_on"]),
            closure["outcome"],
            closure["summary"],
            closure["successor_agreement_id"],
        ),
        reports=MappingProxyType(reports),
        amendment_documents=tuple(doc["amendments"]),
        former_parties=MappingProxyType(former),
    )
