"""Applies events to the read models, a batch at a time, inside the caller's transaction.

A stream's event is applied only if its sequence is the next one: a duplicate
(redelivery after a crash, a relay that republished) is skipped, an event ahead of a
missing one is parked until the gap fills. An agreement's state is folded with the
same `evolve` the registry decides with; a party directory stream (subject `party/<id>`,
on the same topic) with `evolve_party`. Both kinds share the bookkeeping (`streams`,
`parked`, `applied`, keyed by subject) and `party_history`.

Every row belongs to one stream: an agreement's rows (`agreements`, `party_obligations`,
`party_transfers`, `reports`) are derived from its state alone, a party's (`parties`,
`party_successions`) from its entry alone, a history row from one event. So streams can be
applied in any interleaving (the audit rebuild spreads them over connections), and the
queries join the directory to the agreements when they read.

A caller that reads records from an untrusted transport (the worker, from Kafka) gives a
verifier, and then nothing is applied on the record's word alone (docs/adr/0003-signed-envelopes.md):
a record must hash to its own `hash` and carry the registry's signature of that hash, and the
stream's next record must name the last applied event's hash as its `prevhash`. A record that
fails is refused (`RecordRefused`, dead-lettered by the worker) before anything of it is
recorded, so it never takes the sequence of the real event that follows. (The audit tool's
rebuilds read the store itself, whose chain `coordreg-audit verify` checks, and pass none.)

A batch costs a handful of statements whatever its size: the streams and states of its
subjects are read (and locked) at once, folded in memory, and written back in bulk.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from coordreg_contracts import periods
from coordreg_contracts.envelope import Envelope
from coordreg_contracts.events import Event, ProgressReported
from coordreg_contracts.parties import (
    PartyEvent,
    is_party_subject,
    party_id_of,
    party_subject,
)

from services.agreement.document_numbers import parse
from services.agreement.state import AgreementState, Inheritance, ObligationState, Report, evolve
from services.common.db import Connection
from services.common.envelope_signatures import EnvelopeVerifier, check_hash, check_link
from services.common.lru import Lru
from services.common.search_text import search_key
from services.directory.codec import (
    naming_from_json,
    naming_json,
    obligation_successors_from_json,
    obligation_successors_json,
)
from services.directory.state import PartyState, Succession, evolve_party
from services.projections.readmodel.document import from_document, to_document
from services.projections.readmodel.locality import locality_now
from services.projections.readmodel.naming import parties_named, party_events_named, party_summary, summary


class ApplyOutcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    PARKED = "parked"


@dataclass(frozen=True)
class Applied:
    outcome: ApplyOutcome
    # Parked successors applied because this event filled their gap.
    resumed: int = 0
    stream_id: str = ""
    sequence: int = 0
    position: int = 0
    correlation_id: str = ""


def _applied(outcome: ApplyOutcome, envelope: Envelope, resumed: int = 0) -> Applied:
    return Applied(
        outcome, resumed, envelope.subject, envelope.sequence, envelope.position or 0, envelope.correlationid
    )


State = AgreementState | PartyState
Decoded = Event | PartyEvent


@dataclass
class StreamFold:
    """One stream (an agreement's or a party's) as the batch sees it."""

    last_sequence: int
    state: State | None
    first_position: int | None = None
    last_position: int = 0
    last_hash: str = ""
    parked: dict[int, str] = field(default_factory=dict)
    changed: bool = False


@dataclass
class Writes:
    history: list[tuple[Any, ...]] = field(default_factory=list)
    applied: list[tuple[int, str, int]] = field(default_factory=list)
    reports: dict[tuple[str, str, str, str], tuple[Any, ...]] = field(default_factory=dict)
    parked_new: list[tuple[str, int, int, str]] = field(default_factory=list)
    parked_done: list[tuple[str, int]] = field(default_factory=list)


class FoldedStates:
    """Recently folded states, agreements' and parties', so a batch need not read them back.

    Keyed by subject (an agreement id never holds the `/` of `party/<id>`). An entry is used
    only when its version equals the stream's last sequence in the database: a rolled-back
    batch or another worker's write simply makes it stale.
    """

    def __init__(self, capacity: int = 20_000) -> None:
        self._states: Lru[str, State] = Lru(capacity)

    def get(self, agreement_id: str, version: int) -> AgreementState | None:
        state = self._states.get(agreement_id)
        return state if isinstance(state, AgreementState) and state.version == version else None

    def get_party(self, party_id: str, version: int) -> PartyState | None:
        state = self._states.get(party_subject(party_id))
        return state if isinstance(state, PartyState) and state.version == version else None

    def put(self, state: State) -> None:
        key = state.agreement_id if isinstance(state, AgreementState) else party_subject(state.party_id)
        self._states.put(key, state)


def _text(message: bytes | str) -> str:
    return message if isinstance(message, str) else bytes(message).decode("utf-8")


def decode(message: bytes | str) -> tuple[Envelope, Decoded]:
    """The envelope and its typed event, an agreement's or (subject `party/<id>`) a party's;
    raises on anything malformed or of a type the stream cannot hold (then dead-lettered)."""
    envelope = Envelope.model_validate_json(message)
    if is_party_subject(envelope.subject):
        return envelope, envelope.party_event()
    return envelope, envelope.event()


def checked(
    message: bytes | str, signature: bytes | str | None = None, verifier: EnvelopeVerifier | None = None
) -> tuple[Envelope, Decoded]:
    """`decode`, then (with a verifier) the record's own checks: its hash and its signature."""
    envelope, event = decode(message)
    if verifier is not None:
        check_hash(envelope)
        verifier.check(envelope.hash, signature)
    return envelope, event


async def apply_many(
    conn: Connection,
    messages: list[bytes | str],
    cache: FoldedStates | None = None,
    *,
    signatures: Sequence[bytes | str | None] | None = None,
    verifier: EnvelopeVerifier | None = None,
) -> list[Applied | Exception]:
    """Applies the messages in order; a message that cannot be applied gets its exception.

    With a `verifier`, each message needs its own hash, its `envelope-signature` (in `signatures`,
    in the same order) by a trusted key, and to chain to the last event applied. Only the messages' own faults (malformed, not the registry's, not
    chained, refused by `evolve`) come back as exceptions; a database failure raises, and the
    caller's transaction rolls back as a whole.
    """
    if signatures is None:
        signatures = [None] * len(messages)
    results: list[Applied | Exception] = []
    decoded: list[tuple[Envelope, Decoded] | Exception] = []
    for message, signature in zip(messages, signatures, strict=True):
        try:
            decoded.append(checked(message, signature, verifier))
        except Exception as exc:
            decoded.append(exc)
    ids = sorted({item[0].subject for item in decoded if not isinstance(item, Exception)})
    streams = await _load(conn, ids, cache)
    writes = Writes()
    for message, item in zip(messages, decoded, strict=True):
        if isinstance(item, Exception):
            results.append(item)
            continue
        envelope, event = item
        stream = streams[envelope.subject]
        try:
            results.append(apply_event(stream, envelope, event, _text(message), writes, verifier is not None))
        except Exception as exc:
            results.append(exc)
    await _write(conn, streams, writes)
    if cache is not None:
        for stream in streams.values():
            if stream.changed and stream.state is not None:
                cache.put(stream.state)
    return results


async def _load(conn: Connection, ids: list[str], cache: FoldedStates | None) -> dict[str, StreamFold]:
    if not ids:
        return {}
    # Locked in subject order, so that two appliers sharing streams cannot deadlock.
    rows = await conn.fetch(
        """SELECT agreement_id, last_sequence, last_position, last_hash FROM streams
           WHERE agreement_id = ANY($1::text[]) ORDER BY agreement_id FOR UPDATE""",
        ids,
    )
    streams = {subject: StreamFold(0, None) for subject in ids}
    missing: list[str] = []
    missing_parties: list[str] = []
    for row in rows:
        subject = row["agreement_id"]
        state: State | None
        if is_party_subject(subject):
            state = cache.get_party(party_id_of(subject), row["last_sequence"]) if cache else None
            if state is None:
                missing_parties.append(party_id_of(subject))
        else:
            state = cache.get(subject, row["last_sequence"]) if cache else None
            if state is None:
                missing.append(subject)
        streams[subject] = StreamFold(
            row["last_sequence"], state, last_position=row["last_position"], last_hash=row["last_hash"]
        )
    if missing:
        for row in await conn.fetch(
            "SELECT agreement_id, state::text AS state FROM agreements WHERE agreement_id = ANY($1::text[])",
            missing,
        ):
            streams[row["agreement_id"]].state = from_document(json.loads(row["state"]))
    if missing_parties:
        for row in await conn.fetch(
            "SELECT * FROM parties WHERE party_id = ANY($1::text[])", missing_parties
        ):
            streams[party_subject(row["party_id"])].state = _party_state(row)
    for row in await conn.fetch(
        "SELECT agreement_id, sequence, message FROM parked WHERE agreement_id = ANY($1::text[])", ids
    ):
        streams[row["agreement_id"]].parked[row["sequence"]] = row["message"]
    return streams


def apply_event(
    stream: StreamFold,
    envelope: Envelope,
    event: Decoded,
    message: str,
    writes: Writes,
    chained: bool = False,
) -> Applied:
    if envelope.sequence <= stream.last_sequence:
        return _applied(ApplyOutcome.DUPLICATE, envelope)
    if envelope.sequence > stream.last_sequence + 1:
        if envelope.sequence not in stream.parked:
            stream.parked[envelope.sequence] = message
            writes.parked_new.append((envelope.subject, envelope.sequence, envelope.position or 0, message))
        return _applied(ApplyOutcome.PARKED, envelope)
    _record_event(stream, envelope, event, writes, chained)
    resumed = 0
    while stream.last_sequence + 1 in stream.parked:
        following = stream.last_sequence + 1
        try:
            _record_event(stream, *decode(stream.parked[following]), writes, chained)
        except Exception:
            break  # it stays parked, and visible as such, rather than lost
        del stream.parked[following]
        writes.parked_done.append((envelope.subject, following))
        resumed += 1
    return _applied(ApplyOutcome.APPLIED, envelope, resumed)


def _record_event(
    stream: StreamFold, envelope: Envelope, event: Decoded, writes: Writes, chained: bool = False
) -> None:
    if chained:
        # Before anything is recorded: a record that does not chain leaves the stream where it was.
        check_link(envelope, stream.last_hash)
    if is_party_subject(envelope.subject):
        _record_party_event(stream, envelope, event, writes)
        return
    before = stream.state
    # decode() gave an agreement's subject an agreement's event, and _load its state.
    assert before is None or isinstance(before, AgreementState)
    assert not isinstance(event, PartyEvent)
    after = evolve(before, event)  # raises before anything is recorded
    position = _advance(stream, envelope, after)
    recorded_at = datetime.fromisoformat(envelope.time)
    line = summary(event, after)
    for party in sorted(parties_named(event, before, after)):
        writes.history.append(
            (
                party,
                position,
                envelope.id,
                envelope.type,
                after.agreement_id,
                envelope.sequence,
                recorded_at,
                line,
            )
        )
    writes.applied.append((position, after.agreement_id, envelope.sequence))
    if isinstance(event, ProgressReported):
        report = after.reports[(event.obligation_id, event.party_id, event.period)]
        key = (after.agreement_id, event.obligation_id, event.party_id, event.period)
        writes.reports[key] = (
            *key,
            report.status,
            report.completion_percent,
            report.reported_on,
            report.sequence,
        )


def _advance(stream: StreamFold, envelope: Envelope, after: State) -> int:
    position = envelope.position or 0
    stream.state, stream.changed = after, True
    stream.last_sequence, stream.last_position, stream.last_hash = envelope.sequence, position, envelope.hash
    if stream.first_position is None:
        stream.first_position = position
    return position


def _record_party_event(stream: StreamFold, envelope: Envelope, event: Decoded, writes: Writes) -> None:
    """A directory event: into the history of every party it names (a succession: the party
    that ceased and each successor), with no agreement."""
    before = stream.state
    assert before is None or isinstance(before, PartyState)
    assert isinstance(event, PartyEvent)
    party_id = party_id_of(envelope.subject)
    after = evolve_party(before, event)  # raises before anything is recorded
    if after.party_id != party_id:
        raise ValueError(f"stream {envelope.subject!r} registers party {after.party_id!r}")
    position = _advance(stream, envelope, after)
    recorded_at = datetime.fromisoformat(envelope.time)
    line = party_summary(event, after)
    for party in sorted(party_events_named(event, party_id)):
        writes.history.append(
            (party, position, envelope.id, envelope.type, None, envelope.sequence, recorded_at, line)
        )
    writes.applied.append((position, envelope.subject, envelope.sequence))


# The read models' columns, per table, in the order every row function of this module gives
# them: the live applier's statements and the audit tool's fast rebuild (COPY) both use them.
COLUMNS: dict[str, tuple[str, ...]] = {
    "agreements": (
        "agreement_id", "version", "first_position", "last_position", "document_number", "kind", "title",
        "locality", "locality_key", "status", "signed_on", "term_start", "term_end", "party_ids",
        "search_text", "state", "locality_now", "locality_now_key", "document_type",
    ),
    "party_obligations": (
        "party_id", "agreement_id", "obligation_id", "document_number", "agreement_title", "title",
        "role", "cadence", "status", "term_start", "term_end", "latest_report",
        "inherited_from", "inherited_on", "inherited_legal_basis",
    ),
    "party_transfers": (
        "party_id", "agreement_id", "obligation_id", "document_number", "agreement_title", "title",
        "cadence", "status", "term_start", "term_end", "latest_report",
        "inherited_from", "inherited_on", "transferred_to", "transferred_on", "legal_basis",
    ),
    "reports": (
        "agreement_id", "obligation_id", "party_id", "period", "status", "completion_percent",
        "reported_on", "sequence",
    ),
    "party_history": (
        "party_id", "position", "event_id", "type", "agreement_id", "sequence", "recorded_at", "summary",
    ),
    "applied": ("position", "agreement_id", "sequence"),
    "streams": ("agreement_id", "last_sequence", "last_position", "last_hash"),
    "parked": ("agreement_id", "sequence", "position", "message"),
    "parties": (
        "party_id", "version", "first_position", "last_position", "name", "kind", "province",
        "electronic_id", "unit_code", "registered_from_agreement_id", "names", "ceased_on",
        "legal_basis", "successor_party_id", "obligation_successors",
    ),
    "party_successions": ("predecessor_party_id", "successor_party_id", "effective_on", "legal_basis"),
}  # fmt: skip
# party_obligations' primary key: its first columns.
OBLIGATION_KEY = ("party_id", "agreement_id", "obligation_id")


def folded_rows(subject: str, stream: StreamFold) -> dict[str, list[tuple[Any, ...]]]:
    """The rows a folded stream's state stands for, as of its last event, by table: its
    `streams` row, and an agreement's row, obligation and transfer rows, or a party's row and
    succession rows. None for a stream that did not change or has no state.

    The live applier rewrites these whole at every batch; the audit tool's fast rebuild folds a
    stream once and writes them once. The rows of each event (history, `applied`, reports,
    parked) are in the fold's `Writes`."""
    state = stream.state
    if not stream.changed or state is None:
        return {}
    rows: dict[str, list[tuple[Any, ...]]] = {
        "streams": [(subject, stream.last_sequence, stream.last_position, stream.last_hash)]
    }
    if isinstance(state, AgreementState):
        rows["agreements"] = [agreement_row(stream)]
        rows["party_obligations"] = obligation_rows(state)
        rows["party_transfers"] = transfer_rows(state)
    else:
        rows["parties"] = [party_row(stream)]
        succession = state.succession
        rows["party_successions"] = (
            []
            if succession is None
            else [
                (state.party_id, successor, succession.effective_on, succession.legal_basis)
                for successor in succession.successor_ids()
            ]
        )
    return rows


def _insert(table: str) -> str:
    columns = COLUMNS[table]
    values = ", ".join(f"${n}" for n in range(1, len(columns) + 1))
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({values})"


_UPSERT_AGREEMENT = (
    _insert("agreements").replace("$16", "$16::text::jsonb")
    + """
           ON CONFLICT (agreement_id) DO UPDATE SET
               version = EXCLUDED.version, last_position = EXCLUDED.last_position,
               title = EXCLUDED.title, status = EXCLUDED.status,
               term_start = EXCLUDED.term_start, term_end = EXCLUDED.term_end,
               party_ids = EXCLUDED.party_ids, search_text = EXCLUDED.search_text,
               state = EXCLUDED.state, updated_at = now(),
               -- Derived from what never changes, but written again so that a row migrated
               -- with placeholders (migration 004) is right from its agreement's next event.
               locality_now = EXCLUDED.locality_now, locality_now_key = EXCLUDED.locality_now_key,
               document_type = EXCLUDED.document_type"""
)
_UPSERT_PARTY = (
    _insert("parties")
    + """
           ON CONFLICT (party_id) DO UPDATE SET
               version = EXCLUDED.version, last_position = EXCLUDED.last_position, name = EXCLUDED.name,
               kind = EXCLUDED.kind, province = EXCLUDED.province, electronic_id = EXCLUDED.electronic_id,
               unit_code = EXCLUDED.unit_code, names = EXCLUDED.names, ceased_on = EXCLUDED.ceased_on,
               legal_basis = EXCLUDED.legal_basis, successor_party_id = EXCLUDED.successor_party_id,
               obligation_successors = EXCLUDED.obligation_successors"""
)
_UPSERT_REPORT = (
    _insert("reports")
    + """
           ON CONFLICT (agreement_id, obligation_id, party_id, period) DO UPDATE SET
               status = EXCLUDED.status, completion_percent = EXCLUDED.completion_percent,
               reported_on = EXCLUDED.reported_on, sequence = EXCLUDED.sequence"""
)
_UPSERT_STREAM = (
    _insert("streams")
    + """
           ON CONFLICT (agreement_id) DO UPDATE
           SET last_sequence = EXCLUDED.last_sequence, last_position = EXCLUDED.last_position,
               last_hash = EXCLUDED.last_hash"""
)


async def _copy(conn: Connection, table: str, rows: list[tuple[Any, ...]]) -> None:
    if rows:
        await conn.copy_records_to_table(table, records=rows, columns=COLUMNS[table])


async def _write(conn: Connection, streams: dict[str, StreamFold], writes: Writes) -> None:
    if writes.parked_new:
        await conn.executemany(_insert("parked") + " ON CONFLICT DO NOTHING", writes.parked_new)
    if writes.parked_done:
        await conn.execute(
            """DELETE FROM parked p USING unnest($1::text[], $2::int[]) AS d(agreement_id, sequence)
               WHERE p.agreement_id = d.agreement_id AND p.sequence = d.sequence""",
            [a for a, _ in writes.parked_done],
            [s for _, s in writes.parked_done],
        )
    rows: dict[str, list[tuple[Any, ...]]] = {table: [] for table in COLUMNS}
    for subject, stream in streams.items():
        for table, more in folded_rows(subject, stream).items():
            rows[table] += more
    if not rows["streams"]:
        return
    if rows["agreements"]:
        await conn.executemany(_UPSERT_AGREEMENT, rows["agreements"])
        # An agreement's obligation rows are rewritten whole: a moved lead leaves one party's
        # list and joins another's, a transfer moves an obligation from the party that ceased.
        changed = [row[0] for row in rows["agreements"]]
        await _replace_obligations(conn, changed, rows["party_obligations"])
        await conn.execute("DELETE FROM party_transfers WHERE agreement_id = ANY($1::text[])", changed)
        await _copy(conn, "party_transfers", rows["party_transfers"])
    if rows["parties"]:
        await conn.executemany(_UPSERT_PARTY, rows["parties"])
        # A party's successions, one row per successor, rewritten from its entry like its row.
        ids = [row[0] for row in rows["parties"]]
        await conn.execute("DELETE FROM party_successions WHERE predecessor_party_id = ANY($1::text[])", ids)
        await _copy(conn, "party_successions", rows["party_successions"])
    if writes.reports:
        await conn.executemany(_UPSERT_REPORT, list(writes.reports.values()))
    await _copy(conn, "party_history", writes.history)
    await _copy(conn, "applied", writes.applied)
    await conn.executemany(_UPSERT_STREAM, rows["streams"])


_OBLIGATION_ROWS = (
    f"SELECT {', '.join(COLUMNS['party_obligations'])} FROM party_obligations"
    " WHERE agreement_id = ANY($1::text[])"
)


async def _replace_obligations(
    conn: Connection, agreement_ids: list[str], rows: list[tuple[Any, ...]]
) -> None:
    """The agreements' obligation rows made exactly `rows`, writing only the rows that differ
    from the stored ones: a progress report changes one party's `latest_report`, and rewriting
    every row of the agreement at each event was the projection's largest cost in PostgreSQL
    (bench/hot.py). A stored row that compares unequal for any reason is written again, so the
    worst case is the whole rewrite it replaces."""
    key = len(OBLIGATION_KEY)
    wanted = {row[:key]: row for row in rows}
    if len(wanted) < len(rows):
        # A key twice (a party that leads and supports one obligation: the domain refuses it, the
        # fold trusts the log): written whole, so that the database refuses it as it always has.
        await conn.execute(
            "DELETE FROM party_obligations WHERE agreement_id = ANY($1::text[])", agreement_ids
        )
        await _copy(conn, "party_obligations", rows)
        return
    stored = {tuple(r[:key]): tuple(r) for r in await conn.fetch(_OBLIGATION_ROWS, agreement_ids)}
    stale = [k for k, row in stored.items() if wanted.get(k) != row]
    if stale:
        await conn.execute(
            """DELETE FROM party_obligations p
               USING unnest($1::text[], $2::text[], $3::text[]) AS d(party_id, agreement_id, obligation_id)
               WHERE (p.party_id, p.agreement_id, p.obligation_id) = (d.party_id, d.agreement_id, d.obligation_id)""",
            *(list(column) for column in zip(*stale, strict=True)),
        )
    await _copy(conn, "party_obligations", [row for k, row in wanted.items() if stored.get(k) != row])


def party_row(stream: StreamFold) -> tuple[Any, ...]:
    state = stream.state
    assert isinstance(state, PartyState)
    succession = state.succession
    return (
        state.party_id,
        state.version,
        stream.first_position or stream.last_position,
        stream.last_position,
        state.name,
        state.kind,
        state.province,
        state.electronic_id,
        state.unit_code,
        state.registered_from_agreement_id,
        [naming_json(n) for n in state.names],  # jsonb: the connection's codec encodes it
        succession.effective_on if succession else None,
        succession.legal_basis if succession else None,
        succession.successor_party_id if succession else None,
        obligation_successors_json(succession) if succession else [],
    )


def _party_state(row: Any) -> PartyState:
    """A party's entry read back from its `parties` row (the inverse of `party_row`)."""
    succession = None
    if row["ceased_on"] is not None:
        succession = Succession(
            row["ceased_on"],
            row["legal_basis"],
            row["successor_party_id"],
            obligation_successors_from_json(row["obligation_successors"]),
        )
    return PartyState(
        party_id=row["party_id"],
        version=row["version"],
        name=row["name"],
        kind=row["kind"],
        province=row["province"],
        electronic_id=row["electronic_id"],
        unit_code=row["unit_code"],
        registered_from_agreement_id=row["registered_from_agreement_id"],
        names=tuple(naming_from_json(n) for n in row["names"]),
        succession=succession,
    )


def agreement_row(stream: StreamFold) -> tuple[Any, ...]:
    state = stream.state
    assert isinstance(state, AgreementState)
    now = locality_now(state.locality)
    return (
        state.agreement_id,
        state.version,
        stream.first_position or stream.last_position,
        stream.last_position,
        state.document_number,
        state.kind,
        state.title,
        state.locality,
        search_key(state.locality),
        state.status,
        state.signed_on,
        state.term.start,
        state.term.end,
        sorted(state.parties),
        search_key(f"{state.document_number} {state.title}"),
        json.dumps(to_document(state), ensure_ascii=False),
        now,
        search_key(now),
        parse(state.document_number).document_type,
    )


def latest_report(state: AgreementState, obligation_id: str, party_id: str) -> dict[str, Any] | None:
    """The party's report for the latest period (ties: the later report supersedes)."""
    mine: list[Report] = [
        r for r in state.reports.values() if r.obligation_id == obligation_id and r.party_id == party_id
    ]
    if not mine:
        return None
    report = max(mine, key=lambda r: (periods.sort_key(r.period), r.sequence))
    return {
        "period": report.period,
        "status": report.status,
        "completion_percent": report.completion_percent,
        "reported_on": report.reported_on.isoformat(),
    }


def inherited_by(item: ObligationState, party_id: str) -> Inheritance | None:
    """The latest transfer that gave `party_id` the obligation, if it holds it by one."""
    return next((i for i in reversed(item.inherited) if i.to_party_id == party_id), None)


def obligation_rows(state: AgreementState) -> list[tuple[Any, ...]]:
    rows = []
    for item in state.obligations.values():
        ob = item.obligation
        status = "closed" if state.status == "closed" else item.status
        roles = [(ob.lead_party_id, "lead")] + [(p, "supporter") for p in ob.supporting_party_ids]
        for party_id, role in roles:
            report = latest_report(state, ob.obligation_id, party_id)
            inherited = inherited_by(item, party_id)
            rows.append(
                (
                    party_id,
                    state.agreement_id,
                    ob.obligation_id,
                    state.document_number,
                    state.title,
                    ob.title,
                    role,
                    ob.cadence.value,
                    status,
                    state.term.start,
                    state.term.end,
                    report,  # jsonb: the connection's codec encodes it
                    inherited.from_party_id if inherited else None,
                    inherited.effective_on if inherited else None,
                    inherited.legal_basis if inherited else None,
                )
            )
    return rows


def transfer_rows(state: AgreementState) -> list[tuple[Any, ...]]:
    """What each party that ceased passed on: one row per (party, obligation) it ceded."""
    rows = []
    for item in state.obligations.values():
        ob = item.obligation
        status = "closed" if state.status == "closed" else item.status
        ceded: set[str] = set()
        for n, transfer in enumerate(item.inherited):
            if transfer.from_party_id in ceded:
                continue  # `ceded_by`: the first time it let the obligation go
            ceded.add(transfer.from_party_id)
            got = next(
                (i for i in reversed(item.inherited[:n]) if i.to_party_id == transfer.from_party_id), None
            )
            rows.append(
                (
                    transfer.from_party_id,
                    state.agreement_id,
                    ob.obligation_id,
                    state.document_number,
                    state.title,
                    ob.title,
                    ob.cadence.value,
                    status,
                    state.term.start,
                    state.term.end,
                    latest_report(state, ob.obligation_id, transfer.from_party_id),
                    got.from_party_id if got else None,
                    got.effective_on if got else None,
                    transfer.to_party_id,
                    transfer.effective_on,
                    transfer.legal_basis,
                )
            )
    return rows
