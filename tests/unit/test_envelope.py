"""The CloudEvents envelope and its hash chain, exactly as docs/CONTRACT.md defines them."""

from __future__ import annotations

import hashlib
import json

from coordreg_contracts.envelope import Envelope, canonical_json, envelope_hash, seal
from coordreg_contracts.events import TermClosed


def closing(prevhash: str = "ab" * 32) -> Envelope:
    return seal(
        event=TermClosed.model_validate(
            {"closed_on": "2020-12-31", "outcome": "completed", "summary": "Tổng kết năm 2020"}
        ),
        event_id="7d1f0d1e-0000-4000-8000-000000000001",
        agreement_id="a-1",
        sequence=4,
        recorded_at="2026-11-22T14:00:00.000000Z",
        prevhash=prevhash,
        actor="mttq-bac-kan-system",
        correlation_id="c-1",
        causation_id="k-1",
    )


def test_canonical_json_sorts_keys_has_no_spaces_and_writes_utf8() -> None:
    assert canonical_json({"b": 1, "a": "Bắc Kạn"}) == '{"a":"Bắc Kạn","b":1}'.encode()


def test_hash_is_sha256_of_the_envelope_without_hash_and_position() -> None:
    envelope = closing()
    fields = envelope.model_dump()
    del fields["hash"], fields["position"]
    expected = hashlib.sha256(
        json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    ).hexdigest()
    assert envelope.hash == expected
    assert envelope.model_copy(update={"position": 1041}).computed_hash() == expected


def test_any_change_to_the_envelope_changes_the_hash() -> None:
    envelope = closing()
    tampered = envelope.model_copy(update={"data": {**envelope.data, "outcome": "terminated"}})
    assert tampered.computed_hash() != envelope.hash
    assert closing(prevhash="cd" * 32).hash != envelope.hash


def test_envelope_carries_every_contract_attribute() -> None:
    body = closing().model_dump()
    assert set(body) == {
        "specversion", "id", "source", "type", "subject", "time", "datacontenttype", "sequence",
        "position", "prevhash", "hash", "actor", "correlationid", "causationid", "data",
    }  # fmt: skip
    assert body["type"] == "vn.gov.coordination.TermClosed.v1"
    assert body["specversion"] == "1.0" and body["source"] == "/registry"
    assert envelope_hash(body) == body["hash"]


def test_event_reads_back_typed() -> None:
    event = closing().event()
    assert isinstance(event, TermClosed) and event.summary == "Tổng kết năm 2020"
