"""Applies events to the read models, a batch at a time, inside the caller's transaction.

An agreement's event is applied only if its sequence is the next one: a duplicate
(redelivery after a crash, a relay that republished) is skipped, an event ahead of a
missing one is parked until the gap fills. The agreement's state is folded with the
same `evolve` the registry decides with.

A batch costs a handful of statements whatever its size: the streams and states of its
agreements are read (and locked) at once, folded in memory, and written back in bulk.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from coordreg_contracts.envelope import Envelope
from coordreg_contracts.events import Event, ProgressReported

from services.agreement import periods
from services.agreement.state import AgreementState, Report, evolve
from services.common.db import Connection
from services.common.lru import Lru
from services.projections.readmodel.document import from_document, to_document
from services.projections.readmodel.naming import parties_named, summary
from services.projections.readmodel.search_text import search_key


class ApplyOutcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    PARKED = "parked"


@dataclass(frozen=True)
class Applied:
    outcome: ApplyOutcome
    # Parked successors applied because this event filled their gap.
    resumed: int = 0
    agreement_id: str = ""
    sequence: int = 0
    position: int = 0
    correlation_id: str = ""


def _applied(outcome: ApplyOutcome, envelope: Envelope, resumed: int = 0) -> Applied:
    return Applied(
        outcome, resumed, envelope.subject, envelope.sequence, envelope.position or 0, envelope.correlationid
    )


@dataclass
class _Stream:
    """One agreement as the batch sees it."""

    last_sequence: int
    state: AgreementState | None
    first_position: int | None = None
    last_position: int = 0
    last_hash: str = ""
    parked: dict[int, str] = field(default_factory=dict)
    changed: bool = False


@dataclass
class _Writes:
    history: list[tuple[Any, ...]] = field(default_factory=list)
    applied: list[tuple[int, str, int]] = field(default_factory=list)
    reports: dict[tuple[str, str, str, str], tuple[Any, ...]] = field(default_factory=dict)
    parked_new: list[tuple[str, int, int, str]] = field(default_factory=list)
    parked_done: list[tuple[str, int]] = field(default_factory=list)


class FoldedStates:
    """Recently folded agreement states, so a batch need not parse them back from JSON.

    An entry is used only when its version equals the stream's last sequence in the
    database: a rolled-back batch or another worker's write simply makes it stale.
    """

    def __init__(self, capacity: int = 20_000) -> None:
        self._states: Lru[str, AgreementState] = Lru(capacity)

    def get(self, agreement_id: str, version: int) -> AgreementState | None:
        state = self._states.get(agreement_id)
        return state if state is not None and state.version == version else None

    def put(self, state: AgreementState) -> None:
        self._states.put(state.agreement_id, state)


def _text(message: bytes | str) -> str:
    return message if isinstance(message, str) else bytes(message).decode("utf-8")


def decode(message: bytes | str) -> tuple[Envelope, Event]:
    """The envelope and its typed event; raises on anything malformed (then dead-lettered)."""
    envelope = Envelope.model_validate_json(message)
    return envelope, envelope.event()


async def apply_many(
    conn: Connection, messages: list[bytes | str], cache: FoldedStates | None = None
) -> list[Applied | Exception]:
    """Applies the messages in order; a message that cannot be applied gets its exception.

    Only the messages' own faults (malformed, refused by `evolve`) come back as exceptions;
    a database failure raises, and the caller's transaction rolls back as a whole.
    """
    results: list[Applied | Exception] = []
    decoded: list[tuple[Envelope, Event] | Exception] = []
    for message in messages:
        try:
            decoded.append(decode(message))
        except Exception as exc:
            decoded.append(exc)
    ids = sorted({item[0].subject for item in decoded if not isinstance(item, Exception)})
    streams = await _load(conn, ids, cache)
    writes = _Writes()
    for message, item in zip(messages, decoded, strict=True):
        if isinstance(item, Exception):
            results.append(item)
            continue
        envelope, event = item
        stream = streams[envelope.subject]
        try:
            results.append(_fold(stream, envelope, event, _text(message), writes))
        except Exception as exc:
            results.append(exc)
    await _write(conn, streams, writes)
    if cache is not None:
        for stream in streams.values():
            if stream.changed and stream.state is not None:
                cache.put(stream.state)
    return results


async def _load(conn: Connection, ids: list[str], cache: FoldedStates | None) -> dict[str, _Stream]:
    if not ids:
        return {}
    # Locked in id order, so that two appliers sharing agreements cannot deadlock.
    rows = await conn.fetch(
        """SELECT agreement_id, last_sequence, last_position, last_hash FROM streams
           WHERE agreement_id = ANY($1::text[]) ORDER BY agreement_id FOR UPDATE""",
        ids,
    )
    streams = {agreement_id: _Stream(0, None) for agreement_id in ids}
    missing = []
    for row in rows:
        state = cache.get(row["agreement_id"], row["last_sequence"]) if cache else None
        if state is None:
            missing.append(row["agreement_id"])
        streams[row["agreement_id"]] = _Stream(
            row["last_sequence"], state, last_position=row["last_position"], last_hash=row["last_hash"]
        )
    if missing:
        for row in await conn.fetch(
            "SELECT agreement_id, state::text AS state FROM agreements WHERE agreement_id = ANY($1::text[])",
            missing,
        ):
            streams[row["agreement_id"]].state = from_document(json.loads(row["state"]))
    for row in await conn.fetch(
        "SELECT agreement_id, sequence, message FROM parked WHERE agreement_id = ANY($1::text[])", ids
    ):
        streams[row["agreement_id"]].parked[row["sequence"]] = row["message"]
    return streams


def _fold(stream: _Stream, envelope: Envelope, event: Event, message: str, writes: _Writes) -> Applied:
    if envelope.sequence <= stream.last_sequence:
        return _applied(ApplyOutcome.DUPLICATE, envelope)
    if envelope.sequence > stream.last_sequence + 1:
        if envelope.sequence not in stream.parked:
            stream.parked[envelope.sequence] = message
            writes.parked_new.append((envelope.subject, envelope.sequence, envelope.position or 0, message))
        return _applied(ApplyOutcome.PARKED, envelope)
    _evolve(stream, envelope, event, writes)
    resumed = 0
    while stream.last_sequence + 1 in stream.parked:
        following = stream.last_sequence + 1
        try:
            _evolve(stream, *decode(stream.parked[following]), writes)
        except Exception:
            break  # it stays parked, and visible as such, rather than lost
        del stream.parked[following]
        writes.parked_done.append((envelope.subject, following))
        resumed += 1
    return _applied(ApplyOutcome.APPLIED, envelope, resumed)


def _evolve(stream: _Stream, envelope: Envelope, event: Event, writes: _Writes) -> None:
    before = stream.state
    after = evolve(before, event)  # raises before anything is recorded
    position = envelope.position or 0
    stream.state, stream.changed = after, True
    stream.last_sequence, stream.last_position, stream.last_hash = envelope.sequence, position, envelope.hash
    if stream.first_position is None:
        stream.first_position = position
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


async def _write(conn: Connection, streams: dict[str, _Stream], writes: _Writes) -> None:
    changed = {agreement_id: s for agreement_id, s in streams.items() if s.changed and s.state is not None}
    if writes.parked_new:
        await conn.executemany(
            """INSERT INTO parked (agreement_id, sequence, position, message)
               VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING""",
            writes.parked_new,
        )
    if writes.parked_done:
        await conn.execute(
            """DELETE FROM parked p USING unnest($1::text[], $2::int[]) AS d(agreement_id, sequence)
               WHERE p.agreement_id = d.agreement_id AND p.sequence = d.sequence""",
            [a for a, _ in writes.parked_done],
            [s for _, s in writes.parked_done],
        )
    if not changed:
        return
    await conn.executemany(
        """INSERT INTO agreements
               (agreement_id, version, first_position, last_position, document_number, kind, title,
                locality, locality_key, status, signed_on, term_start, term_end, party_ids, search_text, state)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16::text::jsonb)
           ON CONFLICT (agreement_id) DO UPDATE SET
               version = EXCLUDED.version, last_position = EXCLUDED.last_position,
               title = EXCLUDED.title, status = EXCLUDED.status,
               term_start = EXCLUDED.term_start, term_end = EXCLUDED.term_end,
               party_ids = EXCLUDED.party_ids, search_text = EXCLUDED.search_text,
               state = EXCLUDED.state, updated_at = now()""",
        [_agreement_row(s) for s in changed.values()],
    )
    # An agreement's obligation rows are rewritten whole: a moved lead leaves one party's
    # list and joins another's.
    await conn.execute("DELETE FROM party_obligations WHERE agreement_id = ANY($1::text[])", list(changed))
    obligations = [row for s in changed.values() for row in _obligation_rows(s.state)]  # type: ignore[arg-type]
    if obligations:
        await conn.copy_records_to_table(
            "party_obligations",
            records=obligations,
            columns=[
                "party_id", "agreement_id", "obligation_id", "document_number", "agreement_title", "title",
                "role", "cadence", "status", "term_start", "term_end", "latest_report",
            ],
        )  # fmt: skip
    if writes.reports:
        await conn.executemany(
            """INSERT INTO reports (agreement_id, obligation_id, party_id, period, status,
                                    completion_percent, reported_on, sequence)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
               ON CONFLICT (agreement_id, obligation_id, party_id, period) DO UPDATE SET
                   status = EXCLUDED.status, completion_percent = EXCLUDED.completion_percent,
                   reported_on = EXCLUDED.reported_on, sequence = EXCLUDED.sequence""",
            list(writes.reports.values()),
        )
    if writes.history:
        await conn.copy_records_to_table(
            "party_history",
            records=writes.history,
            columns=[
                "party_id",
                "position",
                "event_id",
                "type",
                "agreement_id",
                "sequence",
                "recorded_at",
                "summary",
            ],
        )
    await conn.copy_records_to_table(
        "applied", records=writes.applied, columns=["position", "agreement_id", "sequence"]
    )
    await conn.executemany(
        """INSERT INTO streams (agreement_id, last_sequence, last_position, last_hash)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (agreement_id) DO UPDATE
           SET last_sequence = EXCLUDED.last_sequence, last_position = EXCLUDED.last_position,
               last_hash = EXCLUDED.last_hash""",
        [(a, s.last_sequence, s.last_position, s.last_hash) for a, s in changed.items()],
    )


def _agreement_row(stream: _Stream) -> tuple[Any, ...]:
    state = stream.state
    assert state is not None
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


def _obligation_rows(state: AgreementState) -> list[tuple[Any, ...]]:
    rows = []
    for item in state.obligations.values():
        ob = item.obligation
        status = "closed" if state.status == "closed" else item.status
        roles = [(ob.lead_party_id, "lead")] + [(p, "supporter") for p in ob.supporting_party_ids]
        for party_id, role in roles:
            report = latest_report(state, ob.obligation_id, party_id)
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
                )
            )
    return rows
