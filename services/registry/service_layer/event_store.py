"""The event store port: what the service layer needs from any store of agreement events.

Implementations (services/registry/adapters) give the same guarantees, proven by one contract
suite run against each (tests/support/store_contract.py):
- append-only: an event, once stored, never changes;
- optimistic concurrency: an append names the version it follows and fails with
  `ConcurrencyError` if another append got there first;
- one transaction: the events, their outbox rows, the document-number claim of a signing,
  the Idempotency-Key response, the party streams a signing registers, the directory versions
  the decision relied on and the successions it queues are stored together or not at all.

Party directory streams (`party/<id>`, decision 15) live in the same store. Beside each one the
store keeps its current version as a lockable row, so that a decision that read a party's entry
can require it unchanged at commit (`DirectoryRead`), and a queue of parties whose succession
must still be carried into their agreements (the process manager's, decision 17).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from coordreg_contracts.envelope import Envelope, canonical_json

from services.registry.service_layer.idempotency import Completion

_PREVHASH_KEY = ',"prevhash":'


class ConcurrencyError(Exception):
    """Another writer appended to the stream since it was read, or changed a directory entry the
    decision read (`DirectoryRead`): a lost race, decided again by `retry.RetryPolicy`."""


class DuplicateDocument(Exception):
    """The document number is already signed in that locality that year."""

    def __init__(self, agreement_id: str) -> None:
        super().__init__(agreement_id)
        self.agreement_id = agreement_id


@dataclass(frozen=True)
class DocumentClaim:
    """A signing's document number, unique within its locality and the year of its `signed_on`
    (docs/CONTRACT.md, decisions 5 and 13)."""

    locality: str
    document_number: str
    year: int

    def key(self) -> tuple[str, int, str]:
        # Decision 5: "the same locality" ignores case and extra spaces. Decision 13: numbers
        # restart every year, so one signed in another year is another document.
        return " ".join(self.locality.split()).casefold(), self.year, self.document_number


@dataclass(frozen=True)
class DirectoryRead:
    """The directory versions a decision relied on (0: not registered). The append fails with
    `ConcurrencyError` if any of them changed before it commits; a succession or rename that
    commits meanwhile waits for it (the rows are locked for share), so neither can miss the other."""

    versions: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class StreamAppend:
    """Another stream written in the same transaction (a party a signing registers)."""

    stream_id: str
    expected_version: int
    envelopes: Sequence[Envelope]


@dataclass(frozen=True)
class PendingSuccession:
    """A party whose succession is still to be carried into its agreements. `request` changes
    each time the party is queued again, so finishing an older run never drops a newer one."""

    party_id: str
    request: int


@dataclass(frozen=True)
class StoredEvent:
    position: int
    stream_id: str
    sequence: int
    envelope_text: str
    # The registry's signature of the envelope's hash (docs/adr/0003-signed-envelopes.md): beside
    # the envelope, never in it; None for events stored unsigned (before migration 009).
    signature: str | None = field(default=None, kw_only=True)

    def envelope(self) -> Envelope:
        return Envelope.model_validate({**json.loads(self.envelope_text), "position": self.position})

    def message(self) -> bytes:
        """The Kafka record value: the envelope with its position, canonical JSON.

        The stored text is already canonical JSON, so the position is written into it where
        sorted keys put it, just before `prevhash`, instead of decoding and encoding the whole
        envelope again (the relay's largest cost per event). `,"prevhash":` with its quotes
        unescaped is a key; the last one is the envelope's own, since only `data`, sorted
        before it, holds objects.
        """
        return self.message_text().encode()

    def message_text(self) -> str:
        """`message()` as text, for a reader that would only decode the bytes back."""
        text = self.envelope_text
        at = text.rfind(_PREVHASH_KEY)
        if at < 0 or not text.startswith("{"):
            return canonical_json({**json.loads(text), "position": self.position}).decode("utf-8")
        return f'{text[:at]},"position":{int(self.position)}{text[at:]}'


@dataclass(frozen=True)
class Snapshot:
    """A stream's state folded up to `version` by the fold of `model_version`, serialised by its
    reader (opaque to the store), with the hash of the event at `version`."""

    stream_id: str
    model_version: str
    version: int
    last_hash: str
    state: str


@dataclass(frozen=True)
class Resumption:
    """Where a reader resumes a stream: its latest usable snapshot (if any) and every event after
    it (after nothing: all of them), in sequence order."""

    snapshot: Snapshot | None
    events: list[StoredEvent]


class EventStore(Protocol):
    async def load(self, stream_id: str, after: int = 0) -> list[StoredEvent]:
        """The stream's events (an agreement's, or a party's `party/<id>`) with a sequence above
        `after`, in sequence order."""
        ...

    async def load_page(self, stream_id: str, after: int, limit: int, max_bytes: int) -> list[StoredEvent]:
        """A page of a stream's events above sequence `after`, in sequence order: at most `limit`,
        and after the first none past `max_bytes` of envelope text counted from the page's start
        (the one that passes it may come too: the reader cuts exactly). Bounds what one read
        holds in memory however large the stream or its events (docs/CONTRACT.md B7)."""
        ...

    async def append(
        self,
        stream_id: str,
        expected_version: int,
        envelopes: Sequence[Envelope],
        claim: DocumentClaim | None = None,
        completion: Completion | None = None,
        *,
        with_streams: Sequence[StreamAppend] = (),
        versions_read: DirectoryRead | None = None,
        queue_successions: Sequence[str] = (),
    ) -> list[int]:
        """Appends after `expected_version`; returns the positions of this stream's events.

        Raises ConcurrencyError (the stream, one of `with_streams`, or a party of `versions_read`
        moved on), DuplicateDocument (the claim is taken) or ClaimLost (the Idempotency-Key claim
        of `completion` was taken over), and then stores nothing. With `completion`, the command's
        response is recorded for its Idempotency-Key in the same transaction; the parties of
        `queue_successions` are queued for the succession process manager.
        """
        ...

    async def directory_versions(self, party_ids: Sequence[str]) -> dict[str, int]:
        """The current version of each of these party streams that exists."""
        ...

    async def streams_naming(self, party_id: str) -> list[str]:
        """Every agreement any of whose events names the party as a party (signing, added
        party, successor), in signing order."""
        ...

    async def pending_successions(self, limit: int = 100) -> list[PendingSuccession]: ...

    async def succession_pending(self, party_id: str) -> bool:
        """Whether the party's succession is still queued (its transfers are not all in)."""
        ...

    async def finish_succession(self, pending: PendingSuccession) -> None:
        """Drops the party from the queue, unless it was queued again since `pending` was read."""
        ...

    async def existing(self, agreement_ids: Sequence[str]) -> set[str]:
        """Which of these agreements are registered."""
        ...

    async def resume(self, stream_id: str, model_version: str) -> Resumption:
        """The stream's snapshot of `model_version` and the events after it, read together.

        A snapshot is handed out only if the stream holds an event at its version with its
        `last_hash`: one that does not match the events is ignored, never believed."""
        ...

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        """Keeps the snapshot, unless one at least as new is kept for its stream and model version."""
        ...


def require_continuation(stream_id: str, expected_version: int, envelopes: Sequence[Envelope]) -> None:
    """Every store implementation refuses envelopes that do not follow `expected_version`."""
    for offset, envelope in enumerate(envelopes, start=1):
        if envelope.sequence != expected_version + offset or envelope.subject != stream_id:
            raise ValueError("envelopes must continue the stream's sequence")


def party_marker(party_id: str) -> str:
    """How any event naming the party as a party writes it in canonical JSON (party ids are
    slugs: nothing in them is escaped), so `streams_naming` can find it in the stored text."""
    return f'"party_id":"{party_id}"'
