"""Agreement states as snapshot text, and the model version a snapshot was folded by.

The snapshot's shape is its own (mappings as [key, value] pairs, in the fold's order), built
from the parts the contract's shape is built from (services/agreement/codec.py).

A snapshot is only as good as the fold that made it: a reader whose fold, state shape or
reading of stored events differs must not resume from it. So the model version is a digest
of the source of every module that decides what folding a stream gives (`FOLD_MODULES`, this
codec included), not a constant someone has to remember to bump. Any edit of them, even a
comment, orphans the snapshots: they are rebuilt from the events by the next cold loads, which
costs a fold each and is never wrong. tests/unit/test_snapshots.py fails if the state comes to
depend on a module missing from the list.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from datetime import date
from pathlib import Path
from types import MappingProxyType
from typing import Any

from coordreg_contracts.common import LegalBasis, Obligation, Party, Term

from services.agreement.codec import (
    closure_from_json,
    closure_json,
    inheritance_from_json,
    inherited_json,
    report_from_json,
    report_json,
)
from services.agreement.state import AgreementState, FormerParty, ObligationState

# Bumped by hand only to orphan every snapshot without a change of the modules below.
FORMAT = 1

# What the repository folds: stored envelope text -> typed events (upcast) -> evolve -> state,
# and this codec. Every first-party module the state module imports is among them.
FOLD_MODULES = (
    "services.agreement.state",
    "services.agreement.codec",
    "services.registry.service_layer.snapshots",
    "coordreg_contracts",
    "coordreg_contracts.changes",
    "coordreg_contracts.common",
    "coordreg_contracts.envelope",
    "coordreg_contracts.events",
    "coordreg_contracts.parties",
    "coordreg_contracts.upcasting",
)


def model_version(modules: tuple[str, ...] = FOLD_MODULES, format_: int = FORMAT) -> str:
    digest = hashlib.sha256(str(format_).encode())
    for name in modules:
        origin = importlib.import_module(name).__file__
        assert origin is not None, f"{name} has no source file"
        # Line endings normalised: one source, one version, whichever checkout it came from.
        source = Path(origin).read_bytes().replace(b"\r\n", b"\n")
        digest.update(name.encode() + b"\0" + source + b"\0")
    return f"{format_}-{digest.hexdigest()[:16]}"


MODEL_VERSION = model_version()


def encode_state(state: AgreementState) -> str:
    # Mappings as [key, value] pairs: keys are not always strings (reports), and their order is
    # the order the fold built them in, which a reader may show.
    encoded = {
        "agreement_id": state.agreement_id,
        "version": state.version,
        "document_number": state.document_number,
        "kind": state.kind,
        "title": state.title,
        "locality": state.locality,
        "signed_on": state.signed_on.isoformat(),
        "term": state.term.model_dump(mode="json"),
        "parties": [[k, p.model_dump(mode="json")] for k, p in state.parties.items()],
        "legal_basis": [b.model_dump(mode="json") for b in state.legal_basis],
        "obligations": [[k, _obligation_state(o)] for k, o in state.obligations.items()],
        "parent_agreement_id": state.parent_agreement_id,
        "status": state.status,
        "closure": None if state.closure is None else closure_json(state.closure),
        "reports": [[list(k), report_json(r)] for k, r in state.reports.items()],
        "amendment_documents": list(state.amendment_documents),
        "former_parties": [[k, _former_party(f)] for k, f in state.former_parties.items()],
    }
    return json.dumps(encoded, ensure_ascii=False, separators=(",", ":"))


def decode_state(text: str) -> AgreementState:
    """The state `encode_state` wrote. Raises ValueError, KeyError or TypeError on text it did
    not write (pydantic's ValidationError is a ValueError)."""
    d = json.loads(text)
    closure = d["closure"]
    return AgreementState(
        agreement_id=d["agreement_id"],
        version=d["version"],
        document_number=d["document_number"],
        kind=d["kind"],
        title=d["title"],
        locality=d["locality"],
        signed_on=date.fromisoformat(d["signed_on"]),
        term=Term.model_validate(d["term"]),
        parties=MappingProxyType({k: Party.model_validate(p) for k, p in d["parties"]}),
        legal_basis=tuple(LegalBasis.model_validate(b) for b in d["legal_basis"]),
        obligations=MappingProxyType({k: _to_obligation_state(o) for k, o in d["obligations"]}),
        parent_agreement_id=d["parent_agreement_id"],
        status=d["status"],
        closure=None if closure is None else closure_from_json(closure),
        reports=MappingProxyType({_key(k): report_from_json(r) for k, r in d["reports"]}),
        amendment_documents=tuple(d["amendment_documents"]),
        former_parties=MappingProxyType({k: _to_former_party(f) for k, f in d["former_parties"]}),
    )


def _key(key: list[str]) -> tuple[str, str, str]:
    obligation_id, party_id, period = key
    return obligation_id, party_id, period


# The snapshot's own shapes of an obligation and a former party (nested, unlike the contract's
# flattened ones), built from the shared parts of services/agreement/codec.py.
def _obligation_state(o: ObligationState) -> dict[str, Any]:
    return {
        "obligation": o.obligation.model_dump(mode="json"),
        "status": o.status,
        "inherited": inherited_json(o),
    }


def _to_obligation_state(d: dict[str, Any]) -> ObligationState:
    return ObligationState(
        Obligation.model_validate(d["obligation"]),
        d["status"],
        tuple(inheritance_from_json(i) for i in d["inherited"]),
    )


def _former_party(f: FormerParty) -> dict[str, Any]:
    return {
        "party": f.party.model_dump(mode="json"),
        "effective_on": f.effective_on.isoformat(),
        "legal_basis": f.legal_basis,
        "successor_party_ids": list(f.successor_party_ids),
    }


def _to_former_party(d: dict[str, Any]) -> FormerParty:
    return FormerParty(
        Party.model_validate(d["party"]),
        date.fromisoformat(d["effective_on"]),
        d["legal_basis"],
        tuple(d["successor_party_ids"]),
    )
