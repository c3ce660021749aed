"""Payloads written by schema version 0 are read as version 1 (schemas/coordreg_contracts/upcasting.py).

Version 0 is the pre-release format: no `schema_version`, and an agreement's parties were
called `signatories` and carried no role (the first signatory led). The log is append-only
and hashed, so old payloads are never rewritten: they are upcast each time they are read.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from coordreg_contracts.envelope import Envelope, envelope_hash
from coordreg_contracts.events import AgreementAmended, AgreementSigned, ProgressReported, TermClosed
from coordreg_contracts.upcasting import upcast
from pydantic import ValidationError

from tests.support.builders import HOA_BINH, report_body

AGREEMENT_ID = "5f0e7c1a-3b2d-4c9e-8f6a-1d2e3f4a5b6c"

V1_SIGNED: dict[str, Any] = {**copy.deepcopy(HOA_BINH), "agreement_id": AGREEMENT_ID, "schema_version": 1}


def v0_signed() -> dict[str, Any]:
    """The Hòa Bình signing as the pre-release registry wrote it."""
    payload = {
        key: value
        for key, value in copy.deepcopy(V1_SIGNED).items()
        if key not in {"schema_version", "parties"}
    }
    payload["signatories"] = [
        {key: value for key, value in party.items() if key != "role"} for party in V1_SIGNED["parties"]
    ]
    return payload


def stored(name: str, data: dict[str, Any], *, version_suffix: str = "v1", sequence: int = 1) -> Envelope:
    """An envelope as it sits in the log, with `data` exactly as it was written and hashed."""
    body: dict[str, Any] = {
        "specversion": "1.0",
        "id": f"00000000-0000-4000-8000-00000000000{sequence}",
        "source": "/registry",
        "type": f"vn.gov.coordination.{name}.{version_suffix}",
        "subject": AGREEMENT_ID,
        "time": "2023-04-25T09:00:00.000000Z",
        "datacontenttype": "application/json",
        "sequence": sequence,
        "prevhash": "" if sequence == 1 else "ab" * 32,
        "actor": "mttq-hoa-binh-system",
        "correlationid": "req-1",
        "causationid": "cmd-1",
        "data": data,
    }
    return Envelope(**body, hash=envelope_hash(body), position=7)


@pytest.mark.parametrize("version_suffix", ["v0", "v1"])
def test_v0_agreement_signed_reads_as_v1_with_roles(version_suffix: str) -> None:
    payload = v0_signed()
    assert "schema_version" not in payload and "parties" not in payload
    assert all("role" not in signatory for signatory in payload["signatories"])
    envelope = stored("AgreementSigned", payload, version_suffix=version_suffix)

    event = envelope.event()

    assert isinstance(event, AgreementSigned)
    assert event.schema_version == 1
    assert [(p.party_id, p.role) for p in event.parties] == [
        ("mttq-hoa-binh", "lead"),
        ("hctd-hoa-binh", "member"),
    ]
    assert event.parties[0].name == "Ủy ban MTTQ Việt Nam tỉnh Hòa Bình"
    assert event.parties[1].signatory is not None and event.parties[1].signatory.name == "Đinh Thị Hương"
    assert event == AgreementSigned.model_validate(V1_SIGNED)


def test_upcasting_leaves_the_stored_payload_and_its_hash_alone() -> None:
    envelope = stored("AgreementSigned", v0_signed())
    envelope.event()
    assert envelope.data == v0_signed()
    assert envelope.computed_hash() == envelope.hash


def test_v0_signatory_with_a_role_keeps_it() -> None:
    payload = v0_signed()
    payload["signatories"][0]["role"] = "member"
    payload["signatories"][1]["role"] = "lead"
    upgraded = upcast("AgreementSigned", payload)
    assert [p["role"] for p in upgraded["parties"]] == ["member", "lead"]


def test_explicit_version_0_is_upcast_too() -> None:
    event = stored("AgreementSigned", {**v0_signed(), "schema_version": 0}).event()
    assert isinstance(event, AgreementSigned) and event.parties[0].role == "lead"


def test_v1_payload_passes_unchanged() -> None:
    assert upcast("AgreementSigned", copy.deepcopy(V1_SIGNED)) == V1_SIGNED
    event = stored("AgreementSigned", copy.deepcopy(V1_SIGNED)).event()
    assert event == AgreementSigned.model_validate(V1_SIGNED)


V0_OTHERS: list[tuple[str, type[Any], dict[str, Any]]] = [
    (
        "AgreementAmended",
        AgreementAmended,
        {
            "document_number": "12/QĐ-MTTQ-BTT",
            "reason": "Bổ sung nội dung chuyển đổi số",
            "effective_on": "2024-03-01",
            "changes": [{"op": "revise_obligation", "obligation_id": "nhan-dao", "cadence": "quarterly"}],
        },
    ),
    ("ProgressReported", ProgressReported, report_body()),
    (
        "TermClosed",
        TermClosed,
        {"closed_on": "2027-12-31", "outcome": "completed", "summary": "Tổng kết giai đoạn 2023-2027"},
    ),
]


@pytest.mark.parametrize(("name", "model", "payload"), V0_OTHERS, ids=[name for name, _, _ in V0_OTHERS])
def test_v0_payloads_of_the_other_types_are_stamped_v1(
    name: str, model: type[Any], payload: dict[str, Any]
) -> None:
    assert "schema_version" not in payload
    assert upcast(name, payload) == {**payload, "schema_version": 1}
    event = stored(name, payload, sequence=2).event()
    assert isinstance(event, model)
    assert event.schema_version == 1
    assert event == model.model_validate({**payload, "schema_version": 1})


def test_a_version_this_code_does_not_know_fails_loudly() -> None:
    newer = {**V1_SIGNED, "schema_version": 2}
    assert upcast("AgreementSigned", newer) == newer
    with pytest.raises(ValidationError):
        stored("AgreementSigned", newer).event()
