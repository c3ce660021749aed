"""The `--as-of` rule `party` and `rebuild` share (services/audit/asof.py): recorded time, except a
succession's events, which count from their effective date."""

from __future__ import annotations

from typing import Any

from services.audit.asof import Kept, StreamsAsOf, business_date, counts_as_of
from services.audit.common import parse_instant

PREFIX = "vn.gov.coordination."


def doc(name: str, recorded_at: str, effective_on: str | None = None) -> dict[str, Any]:
    data = {"effective_on": effective_on} if effective_on else {}
    return {"type": f"{PREFIX}{name}.v1", "time": recorded_at, "data": data}


SIGNED = doc("AgreementSigned", "2023-03-15T02:00:00Z")
LATE_REPORT = doc("ProgressReported", "2025-09-15T03:00:00Z")
# Recorded in December 2026, effective 1 July 2025.
TRANSFERRED = doc("ObligationsTransferred", "2026-12-01T03:00:01Z", "2025-07-01")
SUCCEEDED = doc("SuccessionRecorded", "2026-12-01T03:00:00Z", "2025-07-01")
# A rename carries an effective date too, but keeps the recorded-time rule.
RENAMED = doc("PartyRenamed", "2026-12-01T03:00:00Z", "2025-07-01")


def test_a_successions_events_count_from_their_effective_date_whenever_recorded() -> None:
    assert business_date(TRANSFERRED) is not None and business_date(SIGNED) is None
    for event in (TRANSFERRED, SUCCEEDED):
        assert not counts_as_of(event, parse_instant("2025-06-30"))
        assert not counts_as_of(event, parse_instant("2025-06-30T23:59:59.999999Z"))
        assert counts_as_of(event, parse_instant("2025-07-01"))
        assert counts_as_of(event, parse_instant("2025-07-01T00:00:00Z"))
        # An offset is read as its UTC instant: 1 July 06:59 in Hà Nội is still 30 June in UTC.
        assert not counts_as_of(event, parse_instant("2025-07-01T06:59:00+07:00"))
    assert not counts_as_of(RENAMED, parse_instant("2026-11-30"))
    assert counts_as_of(LATE_REPORT, parse_instant("2025-09-15")) and not counts_as_of(
        LATE_REPORT, parse_instant("2025-09-14")
    )


def test_one_recorded_in_advance_does_not_count_before_its_date() -> None:
    advance = doc("ObligationsTransferred", "2025-05-20T03:00:00Z", "2025-07-01")
    assert not counts_as_of(advance, parse_instant("2025-06-15"))
    assert counts_as_of(advance, parse_instant("2025-07-01"))


def test_streams_step_over_what_was_left_out() -> None:
    streams = StreamsAsOf(parse_instant("2025-07-01"))
    assert streams.keep("a", 1, SIGNED) == Kept()
    assert streams.keep("a", 2, LATE_REPORT) is None
    # After the gap: the stream must stand at sequence 2 before the transfer applies.
    assert streams.keep("a", 3, TRANSFERRED) == Kept(follows=2)
    # Another stream, untouched by the gap of the first.
    assert streams.keep("b", 1, SIGNED) == Kept()
    assert streams.keep("b", 2, TRANSFERRED) == Kept()


def test_a_stream_with_nothing_kept_before_its_gap_stays_empty() -> None:
    streams = StreamsAsOf(parse_instant("2025-07-01"))
    registered = doc("PartyRegistered", "2026-11-30T02:00:00Z")
    assert streams.keep("party/x", 1, registered) is None
    assert streams.keep("party/x", 2, SUCCEEDED) is None


def test_events_after_a_succession_recorded_in_advance_follow_it() -> None:
    streams = StreamsAsOf(parse_instant("2025-06-15"))
    advance = doc("ObligationsTransferred", "2025-05-20T03:00:00Z", "2025-07-01")
    report = doc("ProgressReported", "2025-06-01T03:00:00Z")
    assert streams.keep("a", 1, SIGNED) == Kept()
    assert streams.keep("a", 2, advance) is None
    assert streams.keep("a", 3, report) == Kept(follows=2)
