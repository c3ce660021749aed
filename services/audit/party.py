"""`party`: one party's obligations and history as of an instant, from the event store alone.

Every stream whose events mention the party (the agreements that ever named it, its own
directory stream, a predecessor's whose succession names it) is folded with the registry's own
models (`evolve`, `evolve_party`), keeping the events `services.audit.asof` keeps for the
instant: those recorded by then (the end of a given UTC day), and a succession's events from
their effective date on. Obligations and the latest reports come from those states exactly as
the live projection derives them (`readmodel.apply.latest_report`, `inherited_by`), the
obligations the party ceded as `party_transfers` lists them; history lists every kept event
that names the party (`naming`). The read models are not consulted. Each kept event's hash and
its link to the stored event before it are checked on the way; a failure is reported beside
the answer, which then rests on a broken record.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
from coordreg_contracts.envelope import Envelope
from coordreg_contracts.parties import is_party_subject, party_id_of, party_subject
from pydantic import ValidationError

from services.agreement.state import AgreementState, evolve
from services.audit.asof import counts_as_of
from services.audit.common import rfc3339
from services.audit.settings import AuditSettings
from services.directory.state import PartyState, evolve_party
from services.projections.readmodel.apply import inherited_by, latest_report
from services.projections.readmodel.naming import parties_named, party_events_named, party_summary, summary

# What a folded event that does not apply to the state kept so far raises.
NOT_APPLICABLE = (ValidationError, ValueError, KeyError, TypeError)


@dataclass
class PartyReport:
    party_id: str
    as_of: str
    obligations: list[dict[str, Any]] = field(default_factory=list)
    # Obligations the party held until it ceased, and to whom each went (decision 17).
    transferred: list[dict[str, Any]] = field(default_factory=list)
    succeeded_by: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    agreements_read: int = 0
    party_streams_read: int = 0
    events_folded: int = 0
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "command": "party",
            "party_id": self.party_id,
            "as_of": self.as_of,
            "obligations": self.obligations,
            "transferred": self.transferred,
            "succeeded_by": self.succeeded_by,
            "history": self.history,
            "agreements_read": self.agreements_read,
            "party_streams_read": self.party_streams_read,
            "events_folded": self.events_folded,
            "warnings": self.warnings,
        }

    def summary(self) -> str:
        lines = [
            f"party {self.party_id} as of {self.as_of} (from the event store:"
            f" {self.events_folded:,} events of {self.agreements_read:,} agreements"
            f" and {self.party_streams_read:,} party streams)",
        ]
        if self.succeeded_by is not None:
            s = self.succeeded_by
            lines.append(
                f"succeeded by {', '.join(s['successor_party_ids'])} on {s['effective_on']} ({s['legal_basis']})"
            )
        lines += ["", f"obligations ({len(self.obligations)}):"]
        if not self.obligations:
            lines.append("  none")
        for ob in self.obligations:
            report = ob["latest_report"]
            latest = (
                f"{report['period']} {report['status']}"
                + (f" {report['completion_percent']}%" if report["completion_percent"] is not None else "")
                + f" (reported {report['reported_on']})"
                if report
                else "no report"
            )
            lines.append(
                f"  {ob['document_number']:<24} {ob['obligation_id']:<24} {ob['role']:<9} {ob['status']:<9}"
                f" {latest}"
            )
            inherited = (
                f", inherited from {ob['inherited_from']} on {ob['inherited_on']}"
                if ob["inherited_from"]
                else ""
            )
            lines.append(f"      {ob['title']}  [agreement {ob['agreement_id']}, {ob['cadence']}{inherited}]")
        if self.transferred:
            lines += ["", f"transferred ({len(self.transferred)}):"]
        for ob in self.transferred:
            lines.append(
                f"  {ob['document_number']:<24} {ob['obligation_id']:<24} to {ob['transferred_to']}"
                f" on {ob['transferred_on']} ({ob['legal_basis']})  [agreement {ob['agreement_id']}]"
            )
        lines += ["", f"history ({len(self.history)} events):"]
        if not self.history:
            lines.append("  none")
        for event in self.history:
            lines.append(
                f"  {event['recorded_at']}  #{event['position']:<7} {event['type'].split('.')[-2]:<17}"
                f" {event['summary']}"
            )
        for warning in self.warnings:
            lines.append(f"WARNING: {warning}")
        return "\n".join(lines)


def obligations_of(state: AgreementState, party_id: str) -> list[dict[str, Any]]:
    """The party's rows of `party_obligations`, as the projection derives them from a state."""
    rows = []
    for item in state.obligations.values():
        ob = item.obligation
        roles = [(ob.lead_party_id, "lead")] + [(p, "supporter") for p in ob.supporting_party_ids]
        for who, role in roles:
            if who != party_id:
                continue
            inherited = inherited_by(item, party_id)
            rows.append(
                {
                    "agreement_id": state.agreement_id,
                    "document_number": state.document_number,
                    "agreement_title": state.title,
                    "obligation_id": ob.obligation_id,
                    "title": ob.title,
                    "role": role,
                    "cadence": ob.cadence.value,
                    "status": "closed" if state.status == "closed" else item.status,
                    "latest_report": latest_report(state, ob.obligation_id, party_id),
                    "inherited_from": inherited.from_party_id if inherited else None,
                    "inherited_on": inherited.effective_on.isoformat() if inherited else None,
                }
            )
    return rows


def transferred_by(state: AgreementState, party_id: str) -> list[dict[str, Any]]:
    """The party's rows of `party_transfers`: each obligation it ceded, and to whom."""
    rows = []
    for item in state.obligations.values():
        ceded = item.ceded_by(party_id)
        if ceded is None:
            continue
        ob = item.obligation
        rows.append(
            {
                "agreement_id": state.agreement_id,
                "document_number": state.document_number,
                "agreement_title": state.title,
                "obligation_id": ob.obligation_id,
                "title": ob.title,
                "status": "closed" if state.status == "closed" else item.status,
                "latest_report": latest_report(state, ob.obligation_id, party_id),
                "transferred_to": ceded.to_party_id,
                "transferred_on": ceded.effective_on.isoformat(),
                "legal_basis": ceded.legal_basis,
            }
        )
    return rows


@dataclass
class _Stream:
    subject: str
    state: AgreementState | PartyState | None = None
    prevhash: str = ""
    # Set once a kept event did not apply: the stream's later events are not folded onto a
    # state that lacks it.
    stopped: bool = False


class _Fold:
    def __init__(self, party_id: str, as_of: datetime, report: PartyReport) -> None:
        self.party_id = party_id
        self.as_of = as_of
        self.report = report
        self.streams: list[_Stream] = []

    def row(self, row: asyncpg.Record) -> None:
        subject = row["agreement_id"]
        if not self.streams or self.streams[-1].subject != subject:
            self.streams.append(_Stream(subject))
            if is_party_subject(subject):
                self.report.party_streams_read += 1
            else:
                self.report.agreements_read += 1
        stream = self.streams[-1]
        doc = json.loads(row["envelope"])
        # The link of a kept event is to the stored event before it, kept or not.
        prevhash, stream.prevhash = stream.prevhash, str(doc.get("hash", ""))
        if stream.stopped or not counts_as_of(doc, self.as_of):
            return
        where = f"{subject} sequence {row['sequence']} (position {row['position']})"
        envelope = Envelope.model_validate({**doc, "position": row["position"]})
        if envelope.computed_hash() != envelope.hash or envelope.prevhash != prevhash:
            self.report.warnings.append(f"{where} fails its hash check: run `verify`")
        try:
            self._fold(stream, envelope, row["position"])
        except NOT_APPLICABLE as exc:
            # A succession's event kept by its effective date can name what was recorded only
            # after the instant (an obligation added meanwhile): `rebuild` dead-letters it.
            stream.stopped = True
            self.report.warnings.append(
                f"{where}: the {envelope.type} does not apply to the stream as of {self.report.as_of}"
                f" and is left out, with the stream's later events: {' '.join(str(exc).split())[:200]}"
            )

    def _fold(self, stream: _Stream, envelope: Envelope, position: int) -> None:
        if is_party_subject(envelope.subject):
            assert stream.state is None or isinstance(stream.state, PartyState)
            directory_event = envelope.party_event()
            entry = evolve_party(stream.state, directory_event)
            stream.state = entry
            named = party_events_named(directory_event, party_id_of(envelope.subject))
            agreement_id, line = None, party_summary(directory_event, entry)
        else:
            assert stream.state is None or isinstance(stream.state, AgreementState)
            event = envelope.event()
            before = stream.state
            state = evolve(before, event)
            stream.state = state
            named = parties_named(event, before, state)
            agreement_id, line = envelope.subject, summary(event, state)
        self.report.events_folded += 1
        if self.party_id in named:
            self.report.history.append(
                {
                    "event_id": envelope.id,
                    "type": envelope.type,
                    "agreement_id": agreement_id,
                    "sequence": envelope.sequence,
                    "position": position,
                    "recorded_at": envelope.time,
                    "summary": line,
                }
            )


async def party(
    settings: AuditSettings, party_id: str, as_of: datetime, *, status: str = "all"
) -> PartyReport:
    report = PartyReport(party_id, rfc3339(as_of))
    conn = await asyncpg.connect(settings.database_url)
    try:
        # Every stream any of whose events carries the party id as a JSON string.
        rows = await conn.fetch(
            """SELECT position, agreement_id, sequence, envelope FROM registry.events
               WHERE agreement_id IN (
                   SELECT agreement_id FROM registry.events WHERE strpos(envelope, $1) > 0)
               ORDER BY agreement_id, sequence""",
            json.dumps(party_id),
        )
    finally:
        await conn.close()
    fold = _Fold(party_id, as_of, report)
    for row in rows:
        fold.row(row)
    for stream in fold.streams:
        state = stream.state
        if isinstance(state, AgreementState):
            for ob in obligations_of(state, party_id):
                if status == "all" or ob["status"] == "active":
                    report.obligations.append(ob)
            report.transferred += transferred_by(state, party_id)
        elif stream.subject == party_subject(party_id) and isinstance(state, PartyState) and state.succession:
            report.succeeded_by = {
                "successor_party_ids": list(state.succession.successor_ids()),
                "effective_on": state.succession.effective_on.isoformat(),
                "legal_basis": state.succession.legal_basis,
            }
    order = ("document_number", "agreement_id", "obligation_id")
    report.obligations.sort(key=lambda o: tuple(o[k] for k in order))
    report.transferred.sort(key=lambda o: tuple(o[k] for k in order))
    report.history.sort(key=lambda e: e["position"])
    return report
