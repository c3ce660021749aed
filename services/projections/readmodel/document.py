"""The read model's agreement document: the `state` column of `agreements`, served by
`GET /v1/agreements/{id}` of the projections, and read back as the snapshot the next event is
folded onto. The projections own this shape (the registry answers with its own view); a change
to it is a read-model migration or a rebuild (`coordreg-audit rebuild` + `swap`).

The shape is the registry's view of an agreement with two members more: one codec writes both
(services/agreement/codec.py). `locality_now` and `document_type` are derived (from the
locality and the document number), not state: `from_document` ignores them. A document written before the party directory has no
`former_parties` nor obligations' `inherited`, and reads back as a state without them."""

from __future__ import annotations

from typing import Any

from services.agreement.codec import agreement_from_json, agreement_json
from services.agreement.document_numbers import parse
from services.agreement.state import AgreementState
from services.projections.readmodel.locality import locality_now


def to_document(state: AgreementState) -> dict[str, Any]:
    """The contract's shape of the agreement (services/agreement/codec.py), with the derived
    `locality_now` and `document_type` after `locality`."""
    derived = {
        "locality_now": locality_now(state.locality),
        "document_type": parse(state.document_number).document_type,
    }
    return agreement_json(state, derived)


def from_document(doc: dict[str, Any]) -> AgreementState:
    return agreement_from_json(doc)
