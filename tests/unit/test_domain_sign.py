"""Signing rules of docs/CONTRACT.md, on the pure domain (no I/O)."""

from __future__ import annotations

from typing import Any

import pytest
from coordreg_contracts.commands import SignAgreement
from coordreg_contracts.events import AgreementSigned
from pydantic import ValidationError

from services.agreement.state import evolve
from services.registry.domain.decide import StoreFacts, decide
from services.registry.domain.errors import Rejected
from tests.support.builders import sign_body


def sign(body: dict[str, Any], known: StoreFacts | None = None) -> AgreementSigned:
    events = decide(SignAgreement.model_validate(body), None, known or StoreFacts("a-1"))
    assert len(events) == 1 and isinstance(events[0], AgreementSigned)
    return events[0]


def rejected_locs(body: dict[str, Any]) -> list[tuple[str | int, ...]]:
    with pytest.raises(Rejected) as caught:
        sign(body)
    return [v.loc for v in caught.value.violations]


def test_a_valid_signing_records_every_field() -> None:
    body = sign_body()
    event = sign(body)
    assert event.agreement_id == "a-1"
    assert event.model_dump(mode="json", exclude={"agreement_id", "schema_version"}) == body
    state = evolve(None, event)
    assert state.version == 1 and state.status == "active"
    assert set(state.obligations) == {"nhan-dao", "tuyen-truyen"}


def test_one_party_is_not_an_agreement() -> None:
    body = sign_body()
    body["parties"] = body["parties"][:1]
    body["obligations"] = [{**body["obligations"][0], "supporting_party_ids": []}]
    assert ("parties",) in rejected_locs(body)


def test_duplicate_party_ids_are_named_by_index() -> None:
    body = sign_body()
    body["parties"].append({**body["parties"][1]})
    assert ("parties", 2, "party_id") in rejected_locs(body)


@pytest.mark.parametrize("roles", [("member", "member"), ("lead", "lead")])
def test_exactly_one_lead(roles: tuple[str, str]) -> None:
    body = sign_body()
    for party, role in zip(body["parties"], roles, strict=True):
        party["role"] = role
    assert ("parties",) in rejected_locs(body)


def test_at_least_one_obligation() -> None:
    assert ("obligations",) in rejected_locs(sign_body(obligations=[]))


def test_duplicate_obligation_ids() -> None:
    body = sign_body()
    body["obligations"][1]["obligation_id"] = "nhan-dao"
    assert ("obligations", 1, "obligation_id") in rejected_locs(body)


def test_obligation_lead_must_be_a_party() -> None:
    body = sign_body()
    body["obligations"][0]["lead_party_id"] = "so-tai-chinh-hoa-binh"
    assert ("obligations", 0, "lead_party_id") in rejected_locs(body)


def test_supporter_must_be_a_party_and_not_the_lead() -> None:
    body = sign_body()
    body["obligations"][0]["supporting_party_ids"] = ["hctd-hoa-binh", "bao-hoa-binh", "mttq-hoa-binh"]
    locs = rejected_locs(body)
    assert ("obligations", 0, "supporting_party_ids", 1) in locs
    assert ("obligations", 0, "supporting_party_ids", 2) in locs


def test_signed_after_the_term_ended() -> None:
    assert ("signed_on",) in rejected_locs(sign_body(signed_on="2028-01-01"))


def test_unknown_parent_is_rejected_and_a_known_one_accepted() -> None:
    assert ("parent_agreement_id",) in rejected_locs(sign_body(parent_agreement_id="nope"))
    event = sign(sign_body(parent_agreement_id="p-1"), StoreFacts("a-2", frozenset({"p-1"})))
    assert event.parent_agreement_id == "p-1"


def test_term_end_before_start_is_a_field_error() -> None:
    with pytest.raises(ValidationError) as caught:
        SignAgreement.model_validate(sign_body(term={"start": "2027-01-01", "end": "2023-01-01"}))
    assert caught.value.errors()[0]["loc"] == ("term",)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("kind", "treaty"),
        ("signed_on", "25/04/2023"),
        ("signed_on", 1682380800),
        ("title", "   "),
        ("document_number", ""),
    ],
)
def test_malformed_fields(field: str, value: object) -> None:
    with pytest.raises(ValidationError) as caught:
        SignAgreement.model_validate(sign_body(**{field: value}))
    assert caught.value.errors()[0]["loc"][0] == field


def test_party_ids_are_slugs() -> None:
    body = sign_body()
    body["parties"][1]["party_id"] = "Hội Chữ thập đỏ"
    with pytest.raises(ValidationError) as caught:
        SignAgreement.model_validate(body)
    assert caught.value.errors()[0]["loc"] == ("parties", 1, "party_id")


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError):
        SignAgreement.model_validate(sign_body(secret_clause="…"))


def test_vietnamese_text_is_stored_as_nfc() -> None:
    import unicodedata

    decomposed = unicodedata.normalize("NFD", "Chương trình phối hợp chuyển đổi số")
    command = SignAgreement.model_validate(sign_body(title=decomposed))
    assert command.title == unicodedata.normalize("NFC", decomposed)
    assert command.title != decomposed
