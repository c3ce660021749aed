"""Applies one event to the read models, inside the caller's transaction.

An agreement's event is applied only if its sequence is the next one: a duplicate
(redelivery after a crash, a relay that republished) is skipped, an event ahead of a
missing one is parked until the gap fills. The agreement's state is folded with the
same `evolve` the registry decides with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from schemas.envelope import Envelope
from schemas.events import ProgressReported
from services.common.db import Connection
from services.projections.naming import parties_named, summary
from services.projections.text import fold
from services.registry.domain import periods
from services.registry.domain.serialize import state_from_json, state_to_json
from services.registry.domain.state import AgreementState, Report, evolve


class Outcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    PARKED = "parked"


@dataclass(frozen=True)
class Applied:
    outcome: Outcome
    # Parked successors applied because this event filled their gap.
    resumed: int = 0
    agreement_id: str = ""
    sequence: int = 0
    position: int = 0
    correlation_id: str = ""


def _applied(outcome: Outcome, envelope: Envelope, resumed: int = 0) -> Applied:
    return Applied(
        outcome, resumed, envelope.subject, envelope.sequence, envelope.position or 0, envelope.correlationid
    )


async def apply(conn: Connection, message: bytes | str) -> Applied:
    envelope = Envelope.model_validate_json(message)
    last = await conn.fetchval(
        "SELECT last_sequence FROM streams WHERE agreement_id = $1 FOR UPDATE", envelope.subject
    )
    last = last or 0
    if envelope.sequence <= last:
        return _applied(Outcome.DUPLICATE, envelope)
    if envelope.sequence > last + 1:
        await conn.execute(
            """INSERT INTO parked (agreement_id, sequence, position, message)
               VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING""",
            envelope.subject,
            envelope.sequence,
            envelope.position or 0,
            message if isinstance(message, str) else message.decode("utf-8"),
        )
        return _applied(Outcome.PARKED, envelope)
    await _apply_next(conn, envelope)
    first, resumed = envelope, 0
    while True:
        parked = await conn.fetchrow(
            "DELETE FROM parked WHERE agreement_id = $1 AND sequence = $2 RETURNING message",
            envelope.subject,
            envelope.sequence + 1,
        )
        if parked is None:
            return _applied(Outcome.APPLIED, first, resumed)
        envelope = Envelope.model_validate_json(parked["message"])
        await _apply_next(conn, envelope)
        resumed += 1


async def _apply_next(conn: Connection, envelope: Envelope) -> None:
    agreement_id, position = envelope.subject, envelope.position or 0
    row = await conn.fetchrow("SELECT state FROM agreements WHERE agreement_id = $1", agreement_id)
    before = state_from_json(row["state"]) if row else None
    event = envelope.event()
    after = evolve(before, event)
    await _write_agreement(conn, after, position)
    await _write_party_obligations(conn, after)
    if isinstance(event, ProgressReported):
        await _write_report(conn, after, event.obligation_id, event.party_id, event.period)
    recorded_at = datetime.fromisoformat(envelope.time)
    await conn.executemany(
        """INSERT INTO party_history
               (party_id, position, event_id, type, agreement_id, sequence, recorded_at, summary)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING""",
        [
            (
                party,
                position,
                envelope.id,
                envelope.type,
                agreement_id,
                envelope.sequence,
                recorded_at,
                summary(event, after),
            )
            for party in sorted(parties_named(event, before, after))
        ],
    )
    await conn.execute(
        """INSERT INTO streams (agreement_id, last_sequence, last_position, last_hash)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (agreement_id) DO UPDATE
           SET last_sequence = EXCLUDED.last_sequence, last_position = EXCLUDED.last_position,
               last_hash = EXCLUDED.last_hash""",
        agreement_id,
        envelope.sequence,
        position,
        envelope.hash,
    )
    await conn.execute(
        "INSERT INTO applied (position, agreement_id, sequence) VALUES ($1, $2, $3)",
        position,
        agreement_id,
        envelope.sequence,
    )


async def _write_agreement(conn: Connection, state: AgreementState, position: int) -> None:
    doc = state_to_json(state)
    await conn.execute(
        """INSERT INTO agreements
               (agreement_id, version, first_position, last_position, document_number, kind, title,
                locality, locality_key, status, signed_on, term_start, term_end, party_ids, search_text, state)
           VALUES ($1, $2, $3, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
           ON CONFLICT (agreement_id) DO UPDATE SET
               version = EXCLUDED.version, last_position = EXCLUDED.last_position,
               title = EXCLUDED.title, status = EXCLUDED.status,
               term_start = EXCLUDED.term_start, term_end = EXCLUDED.term_end,
               party_ids = EXCLUDED.party_ids, search_text = EXCLUDED.search_text,
               state = EXCLUDED.state, updated_at = now()""",
        state.agreement_id,
        state.version,
        position,
        state.document_number,
        state.kind,
        state.title,
        state.locality,
        fold(state.locality),
        state.status,
        state.signed_on,
        state.term.start,
        state.term.end,
        sorted(state.parties),
        fold(f"{state.document_number} {state.title}"),
        doc,
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


async def _write_party_obligations(conn: Connection, state: AgreementState) -> None:
    """Rewrites the agreement's rows: a moved lead leaves one list and joins another."""
    await conn.execute("DELETE FROM party_obligations WHERE agreement_id = $1", state.agreement_id)
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
                    json.dumps(report, ensure_ascii=False) if report else None,
                )
            )
    await conn.executemany(
        """INSERT INTO party_obligations
               (party_id, agreement_id, obligation_id, document_number, agreement_title, title, role,
                cadence, status, term_start, term_end, latest_report)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::text::jsonb)""",
        rows,
    )


async def _write_report(
    conn: Connection, state: AgreementState, obligation_id: str, party_id: str, period: str
) -> None:
    report = state.reports[(obligation_id, party_id, period)]
    await conn.execute(
        """INSERT INTO reports
               (agreement_id, obligation_id, party_id, period, status, completion_percent, reported_on, sequence)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT (agreement_id, obligation_id, party_id, period) DO UPDATE SET
               status = EXCLUDED.status, completion_percent = EXCLUDED.completion_percent,
               reported_on = EXCLUDED.reported_on, sequence = EXCLUDED.sequence""",
        state.agreement_id,
        obligation_id,
        party_id,
        period,
        report.status,
        report.completion_percent,
        report.reported_on,
        report.sequence,
    )
