"""`party`: one party's obligations and history as of an instant, from the event store alone.

Every agreement whose events mention the party is folded with the registry's own
`evolve`, using only the events recorded up to the instant (the end of the given UTC
day). Obligations and the latest reports come from that state exactly as the live
projection derives them (`readmodels.latest_report`); history lists every event that
names the party (`naming.parties_named`, `naming.summary`). The read models are not
consulted. Each folded event's hash and link are checked on the way; a failure is
reported beside the answer, which then rests on a broken record.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
from coordreg_contracts.envelope import Envelope
from coordreg_contracts.parties import is_party_subject, party_id_of

from services.agreement.state import AgreementState, evolve
from services.audit.common import event_time, rfc3339
from services.audit.settings import AuditSettings
from services.directory.state import PartyState, evolve_party
from services.projections.readmodel.apply import latest_report
from services.projections.readmodel.naming import parties_named, party_events_named, party_summary, summary


@dataclass
class PartyReport:
    party_id: str
    as_of: str
    obligations: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    agreements_read: int = 0
    events_folded: int = 0
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "command": "party",
            "party_id": self.party_id,
            "as_of": self.as_of,
            "obligations": self.obligations,
            "history": self.history,
            "agreements_read": self.agreements_read,
            "events_folded": self.events_folded,
            "warnings": self.warnings,
        }

    def summary(self) -> str:
        lines = [
            f"party {self.party_id} as of {self.as_of} (from the event store:"
            f" {self.events_folded:,} events of {self.agreements_read:,} agreements)",
            "",
            f"obligations ({len(self.obligations)}):",
        ]
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
            lines.append(f"      {ob['title']}  [agreement {ob['agreement_id']}, {ob['cadence']}]")
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
                }
            )
    return rows


async def party(
    settings: AuditSettings, party_id: str, as_of: datetime, *, status: str = "all"
) -> PartyReport:
    report = PartyReport(party_id, rfc3339(as_of))
    conn = await asyncpg.connect(settings.database_url)
    try:
        # Every agreement any of whose events carries the party id as a JSON string.
        rows = await conn.fetch(
            """SELECT position, agreement_id, sequence, envelope FROM registry.events
               WHERE agreement_id IN (
                   SELECT agreement_id FROM registry.events WHERE strpos(envelope, $1) > 0)
               ORDER BY agreement_id, sequence""",
            json.dumps(party_id),
        )
    finally:
        await conn.close()
    state: AgreementState | None = None
    entry: PartyState | None = None
    current: str | None = None
    closed_at_cutoff = False
    prevhash = ""
    states: list[AgreementState] = []
    for row in rows:
        if row["agreement_id"] != current:
            if state is not None:
                states.append(state)
            current, state, closed_at_cutoff, prevhash = row["agreement_id"], None, False, ""
            report.agreements_read += 1
        if closed_at_cutoff:
            continue
        doc = json.loads(row["envelope"])
        if event_time(doc) > as_of:
            closed_at_cutoff = True  # later sequences are later in time too
            continue
        envelope = Envelope.model_validate({**doc, "position": row["position"]})
        if envelope.computed_hash() != envelope.hash or envelope.prevhash != prevhash:
            report.warnings.append(
                f"agreement {row['agreement_id']} sequence {row['sequence']} (position {row['position']})"
                " fails its hash check: run `verify`"
            )
        prevhash = envelope.hash
        if is_party_subject(envelope.subject):
            # A directory stream: the party's own, or one whose succession names it (decision 19).
            directory_event = envelope.party_event()
            entry = evolve_party(entry if envelope.sequence > 1 else None, directory_event)
            report.events_folded += 1
            if party_id in party_events_named(directory_event, party_id_of(envelope.subject)):
                report.history.append(
                    {
                        "event_id": envelope.id,
                        "type": envelope.type,
                        "agreement_id": None,
                        "sequence": envelope.sequence,
                        "position": row["position"],
                        "recorded_at": envelope.time,
                        "summary": party_summary(directory_event, entry),
                    }
                )
            continue
        event = envelope.event()
        before = state
        state = evolve(before, event)
        report.events_folded += 1
        if party_id in parties_named(event, before, state):
            report.history.append(
                {
                    "event_id": envelope.id,
                    "type": envelope.type,
                    "agreement_id": envelope.subject,
                    "sequence": envelope.sequence,
                    "position": row["position"],
                    "recorded_at": envelope.time,
                    "summary": summary(event, state),
                }
            )
    if state is not None:
        states.append(state)
    for folded in states:
        for ob in obligations_of(folded, party_id):
            if status == "all" or ob["status"] == "active":
                report.obligations.append(ob)
    report.obligations.sort(key=lambda o: (o["document_number"], o["agreement_id"], o["obligation_id"]))
    report.history.sort(key=lambda e: e["position"])
    return report
