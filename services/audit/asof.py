"""Which events `--as-of T` keeps: one rule for `party` and `rebuild` (services/audit/README.md).

An event counts when it was recorded by `T` (its envelope `time`), except the two halves of a
succession, `ObligationsTransferred` and `SuccessionRecorded`: they count when their business
date `effective_on` is on or before `T`'s UTC date, whenever they were recorded. A succession is
recorded after the fact (a reorganisation effective 1 July 2025, entered in the registry months
later), and the question an auditor asks of a date is who held the obligations then. So before
the effective date the predecessor holds them, as signed; from it, the successor does, and the
predecessor shows as succeeded. One recorded in advance does not count before its date either.

Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from coordreg_contracts.events import event_name

from services.audit.common import event_time

BUSINESS_DATED = frozenset({"ObligationsTransferred", "SuccessionRecorded"})


def business_date(doc: dict[str, Any]) -> date | None:
    """The `effective_on` of a succession's event, None for any other event."""
    try:
        name = event_name(str(doc.get("type")))
    except ValueError:
        return None
    if name not in BUSINESS_DATED:
        return None
    return date.fromisoformat(str(doc["data"]["effective_on"]))


def counts_as_of(doc: dict[str, Any], as_of: datetime) -> bool:
    effective = business_date(doc)
    if effective is not None:
        # The UTC day, as a bare date on the command line means the end of that UTC day.
        return effective <= as_of.astimezone(UTC).date()
    return event_time(doc) <= as_of


@dataclass(frozen=True)
class Kept:
    """An event `--as-of` keeps; `follows` is set when an earlier event of its stream was left
    out: the sequence the stream must be taken to stand at before this one applies."""

    follows: int | None = None


@dataclass
class StreamsAsOf:
    """`counts_as_of` applied stream by stream, each stream's events seen in sequence order.

    A stream's kept events are its prefix recorded by `T`, then any succession event effective
    by `T` but recorded later (or one after a succession recorded in advance and left out).
    Such an event comes after a gap in the sequence, which the sequence-checked applier would
    park: `follows` tells the caller to step over the gap. A stream none of whose events was
    kept before the gap had no state at `T`, so nothing after it is kept either.
    """

    as_of: datetime
    # Streams with an event left out: subject -> whether any event was kept before the first.
    _gapped: dict[str, bool] = field(default_factory=dict)

    def keep(self, subject: str, sequence: int, doc: dict[str, Any]) -> Kept | None:
        counts = counts_as_of(doc, self.as_of)
        kept_before = self._gapped.get(subject)
        if not counts:
            if kept_before is None:
                self._gapped[subject] = sequence > 1
            return None
        if kept_before is None:
            return Kept()
        if not kept_before:
            return None
        return Kept(follows=sequence - 1)
