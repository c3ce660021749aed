"""A party's directory entry, folded from its stream: `evolve_party(state, event) -> state`.

Pure, like `services.agreement.state`: the registry folds it to decide directory commands and
successions, the projections to serve `GET /v1/parties/{id}`, the audit tool to check chains.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

from coordreg_contracts.parties import (
    ObligationSuccessor,
    PartyEvent,
    PartyRegistered,
    PartyRenamed,
    SuccessionRecorded,
)


@dataclass(frozen=True)
class Succession:
    effective_on: date
    legal_basis: str
    successor_party_id: str
    obligation_successors: tuple[ObligationSuccessor, ...] = ()

    def successor_for(self, agreement_id: str, obligation_id: str) -> str:
        for named in self.obligation_successors:
            if named.agreement_id == agreement_id and named.obligation_id == obligation_id:
                return named.successor_party_id
        return self.successor_party_id

    def successor_ids(self) -> tuple[str, ...]:
        # Each once, however many obligations go to it.
        return tuple(
            dict.fromkeys(
                [self.successor_party_id, *(s.successor_party_id for s in self.obligation_successors)]
            )
        )


@dataclass(frozen=True)
class Naming:
    name: str
    effective_on: date | None
    legal_basis: str | None


@dataclass(frozen=True)
class PartyState:
    party_id: str
    version: int
    name: str
    kind: str
    province: str | None
    electronic_id: str | None
    unit_code: str | None
    registered_from_agreement_id: str | None
    # Every name it has had, oldest first (the first one from its registration).
    names: tuple[Naming, ...]
    succession: Succession | None = None

    @property
    def ceased(self) -> bool:
        return self.succession is not None


def evolve_party(state: PartyState | None, event: PartyEvent) -> PartyState:
    """The entry after `event`, by the fold step for its type (`PARTY_EVOLVERS`)."""
    step = PARTY_EVOLVERS.get(type(event))
    if step is None:
        raise TypeError(f"unknown party event {type(event).__name__}")
    opens = step is _registered
    if state is None and not opens:
        raise ValueError(f"{type(event).__name__} before PartyRegistered")
    if state is not None and opens:
        raise ValueError("PartyRegistered on a party that already exists")
    return step(state, event)


def _registered(state: PartyState | None, event: PartyRegistered) -> PartyState:
    return PartyState(
        party_id=event.party_id,
        version=1,
        name=event.name,
        kind=event.kind.value,
        province=event.province,
        electronic_id=event.electronic_id,
        unit_code=event.unit_code,
        registered_from_agreement_id=event.registered_from_agreement_id,
        names=(Naming(event.name, None, None),),
    )


def _renamed(state: PartyState, event: PartyRenamed) -> PartyState:
    naming = Naming(event.name, event.effective_on, event.legal_basis)
    return replace(state, version=state.version + 1, name=event.name, names=(*state.names, naming))


def _succeeded(state: PartyState, event: SuccessionRecorded) -> PartyState:
    if state.succession is not None:
        raise ValueError("a second SuccessionRecorded for one party")
    succession = Succession(
        event.effective_on,
        event.legal_basis,
        event.successor_party_id,
        tuple(event.obligation_successors),
    )
    return replace(state, version=state.version + 1, succession=succession)


# One fold step per event type: a new event adds its row.
PARTY_EVOLVERS: Mapping[type[PartyEvent], Callable[[Any, Any], PartyState]] = {
    PartyRegistered: _registered,
    PartyRenamed: _renamed,
    SuccessionRecorded: _succeeded,
}


def fold_party(events: Iterable[PartyEvent], state: PartyState | None = None) -> PartyState | None:
    for event in events:
        state = evolve_party(state, event)
    return state
