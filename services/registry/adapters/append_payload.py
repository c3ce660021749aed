"""The argument of `registry.append_command`: one command's append, in one documented shape.

The PostgreSQL store sends it as JSON to the function
(services/registry/migrations/definitions/append_command.sql, whose header documents the same
shape); the in-memory store applies the same dictionary in Python, step by step as the function
does. Internal to the registry: the function and this module change together.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NotRequired, TypedDict

from coordreg_contracts.envelope import canonical_json
from coordreg_contracts.parties import is_party_subject, party_id_of

from services.common.envelope_signatures import EnvelopeSigner
from services.common.trace_context import Carrier
from services.registry.service_layer.event_store import DirectoryRead, DocumentClaim, StreamAppend
from services.registry.service_layer.idempotency import Completion


class EventRow(TypedDict):
    """One event, as `registry.events` stores it."""

    stream_id: str
    sequence: int
    event_id: str
    type: str
    recorded_at: str
    # Canonical JSON of the envelope without its position (the database assigns that).
    envelope: str
    # The registry's signature of the envelope's hash (migration 009); absent: stored unsigned.
    signature: NotRequired[str]


class DocumentClaimRow(TypedDict):
    locality: str
    year: int
    document_number: str


class PartyRow(TypedDict):
    """A party stream's directory row moved along: `expected` 0 inserts a new party."""

    party_id: str
    expected: int
    version: int


class CompletionRow(TypedDict):
    """The Idempotency-Key response recorded with the events; the function writes the position
    of the command's last event into `response`."""

    client_id: str
    key: str
    token: str
    status_code: int
    response: Mapping[str, Any]


class AppendPayload(TypedDict):
    stream_id: str
    events: list[EventRow]
    directory: dict[str, int] | None
    claim: DocumentClaimRow | None
    parties: list[PartyRow]
    completion: CompletionRow | None
    queue_successions: list[str]
    # The W3C trace context of the command's span, kept with each of its outbox rows (007).
    trace: NotRequired[Carrier]


def append_payload(
    stream_id: str,
    appends: Sequence[StreamAppend],
    claim: DocumentClaim | None,
    completion: Completion | None,
    versions_read: DirectoryRead | None,
    queue_successions: Sequence[str],
    trace: Carrier | None = None,
    signer: EnvelopeSigner | None = None,
) -> AppendPayload:
    """One command's append: `appends[0]` is the command's stream (`stream_id`), the others are
    written with it (the party streams a signing registers); each event signed by `signer`."""
    events: list[EventRow] = []
    for append in appends:
        for envelope in append.envelopes:
            event: EventRow = {
                "stream_id": append.stream_id,
                "sequence": envelope.sequence,
                "event_id": envelope.id,
                "type": envelope.type,
                "recorded_at": envelope.time,
                "envelope": canonical_json(envelope.without_position()).decode("utf-8"),
            }
            if signer is not None:
                # Signed here, once per event and outside any lock: in the caller's task, before
                # the group commit queues the command.
                event["signature"] = signer.sign(envelope.hash)
            events.append(event)
    document: DocumentClaimRow | None = None
    if claim is not None:
        locality, year, document_number = claim.key()
        document = {"locality": locality, "year": year, "document_number": document_number}
    payload: AppendPayload = {
        "stream_id": stream_id,
        "events": events,
        "directory": dict(versions_read.versions)
        if versions_read is not None and versions_read.versions
        else None,
        "claim": document,
        "parties": [
            {
                "party_id": party_id_of(append.stream_id),
                "expected": append.expected_version,
                "version": append.envelopes[-1].sequence,
            }
            for append in appends
            if is_party_subject(append.stream_id) and append.envelopes
        ],
        "completion": None
        if completion is None
        else {
            "client_id": completion.claim.client_id,
            "key": completion.claim.key,
            "token": completion.claim.token,
            "status_code": completion.status_code,
            "response": completion.body(0),
        },
        # In the command's order: the function queues them once each, in id order; the
        # in-memory store, as the contract model does, in this order.
        "queue_successions": list(queue_successions),
    }
    if trace:
        payload["trace"] = trace
    return payload
