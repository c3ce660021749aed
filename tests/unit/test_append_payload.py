"""The append function's argument has one shape: the keys `registry.append_command` reads
(services/registry/migrations/definitions/append_command.sql) are the fields of
`AppendPayload` and its parts, no more and no fewer, and the store's payload fills them."""

from __future__ import annotations

import re
from typing import get_type_hints

from services.common.envelope_signatures import DEV_SIGNER, DEV_VERIFIER_KEY, EnvelopeVerifier
from services.registry.adapters.append_payload import (
    AppendPayload,
    CompletionRow,
    DocumentClaimRow,
    EventRow,
    PartyRow,
    append_payload,
)
from services.registry.migrations import MIGRATIONS
from services.registry.service_layer.event_store import DirectoryRead, DocumentClaim, StreamAppend
from services.registry.service_layer.idempotency import Claim, Completion
from tests.support.store_contract import envelopes_for

SQL = (MIGRATIONS / "definitions" / "append_command.sql").read_text(encoding="utf-8")
CODE = SQL.split("$$")[1]


def _read(variable: str, member: str | None = None) -> set[str]:
    """The keys the function's code reads from `variable` (or from its member `member`)."""
    prefix = re.escape(variable) + (rf"->'{member}'" if member else "")
    return set(re.findall(prefix + r"->>?'(\w+)'", CODE))


def test_the_function_reads_exactly_the_payloads_fields() -> None:
    assert _read("cmd") == set(get_type_hints(AppendPayload))
    assert _read("e") == set(get_type_hints(EventRow))
    assert _read("party") == set(get_type_hints(PartyRow))
    assert _read("cmd", "claim") == set(get_type_hints(DocumentClaimRow))
    assert _read("cmd", "completion") == set(get_type_hints(CompletionRow))


def test_the_header_documents_every_field() -> None:
    header = SQL.split("CREATE OR REPLACE FUNCTION")[0]
    for shape in (AppendPayload, EventRow, PartyRow, DocumentClaimRow, CompletionRow):
        for field in get_type_hints(shape):
            assert f'"{field}"' in header, (shape.__name__, field)


def test_a_signings_payload() -> None:
    [envelope] = envelopes_for("a-1", 0)
    completion = Completion(Claim("c", "k", "t"), 201, lambda position: {"position": position})
    payload = append_payload(
        "a-1",
        [StreamAppend("a-1", 0, [envelope])],
        DocumentClaim(" Hòa  Bình", "25/CTPH", 2024),
        completion,
        DirectoryRead({"p-1": 2}),
        ["p-2", "p-1"],
        {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"},
        DEV_SIGNER,
    )
    [event] = payload["events"]
    assert set(event) == set(get_type_hints(EventRow))
    assert event["stream_id"] == "a-1" and event["sequence"] == 1 and event["event_id"] == envelope.id
    EnvelopeVerifier.from_keys([DEV_VERIFIER_KEY]).check(envelope.hash, event["signature"])
    assert payload["claim"] == {"locality": "hòa bình", "year": 2024, "document_number": "25/CTPH"}
    assert payload["directory"] == {"p-1": 2}
    assert payload["completion"] == {
        "client_id": "c",
        "key": "k",
        "token": "t",
        "status_code": 201,
        "response": {"position": 0},
    }
    assert payload["queue_successions"] == ["p-2", "p-1"]
    assert payload["parties"] == []
    assert "trace" in payload
