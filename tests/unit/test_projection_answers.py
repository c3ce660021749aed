"""The projections' answer models that encode jsonb objects declare their fields in jsonb's order
(services/projections/entrypoints/answers.py): shorter names first, then bytewise. That order is
what the answers have always had; a field out of it would move a member in every answer."""

from __future__ import annotations

import inspect

from pydantic import BaseModel

from services.projections.entrypoints import answers
from services.projections.entrypoints.answers import AgreementDocument, Stored, encoded


def jsonb_order(names: list[str]) -> list[str]:
    return sorted(names, key=lambda name: (len(name.encode()), name.encode()))


def stored_models() -> list[type[BaseModel]]:
    return [
        model
        for _, model in inspect.getmembers(answers, inspect.isclass)
        if issubclass(model, Stored) and model is not Stored
    ]


def test_every_stored_model_declares_its_fields_in_jsonb_order() -> None:
    assert len(stored_models()) >= 10
    for model in stored_models():
        fields = [field.alias or name for name, field in model.model_fields.items()]
        assert fields == jsonb_order(fields), model.__name__


def test_a_stored_object_is_answered_as_stored() -> None:
    # As PostgreSQL writes a document from before the party directory: no `former_parties`, no
    # obligation's `inherited`; and a member no model names (kept, after the others).
    text = (
        '{"kind": "program", "term": {"end": "2026-12-31", "start": "2021-01-01"}, "title": "T", '
        '"status": "active", "closure": null, "parties": [{"name": "Sở", "role": "lead", '
        '"party_id": "so", "signatory": null}], "reports": [], "version": 2, "locality": "Hòa Bình", '
        '"signed_on": "2021-01-01", "amendments": [], "legal_basis": [], "obligations": [{"title": '
        '"O", "status": "active", "cadence": "annual", "description": null, "lead_party_id": "so", '
        '"obligation_id": "o", "supporting_party_ids": []}], "agreement_id": "a", "locality_now": '
        '"Phú Thọ", "document_type": "CTPH", "document_number": "1/CTPH", "parent_agreement_id": null, '
        '"later": 1}'
    )
    written = encoded(AgreementDocument.model_validate_json(text))
    assert written == text.replace(", ", ",").replace(": ", ":")
