"""Decided events into their envelopes: the stream's next sequence numbers and hash chain."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from coordreg_contracts.envelope import Envelope, seal
from coordreg_contracts.events import Event
from coordreg_contracts.parties import PartyEvent

from services.registry.service_layer.messages import CommandContext


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def seal_events(
    events: Sequence[Event | PartyEvent],
    *,
    stream_id: str,
    version: int,
    prevhash: str,
    context: CommandContext,
    recorded_at: Callable[[], str],
    new_id: Callable[[], str],
) -> list[Envelope]:
    """The decided events in their envelopes, continuing the stream's sequence and hash chain."""
    sealed = []
    for offset, event in enumerate(events, start=1):
        envelope = seal(
            event=event,
            event_id=new_id(),
            agreement_id=stream_id,
            sequence=version + offset,
            recorded_at=recorded_at(),
            prevhash=prevhash,
            actor=context.caller.client_id,
            correlation_id=context.correlation_id,
            causation_id=context.causation_id,
        )
        sealed.append(envelope)
        prevhash = envelope.hash
    return sealed
