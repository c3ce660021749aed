"""The party directory's rules and the succession of a party into one agreement, as pure
functions (docs/CONTRACT.md, decisions 15–18). The handler looks up what they need from the
store beforehand and passes it in, as for `decide`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from coordreg_contracts.changes import AddParty
from coordreg_contracts.commands import AmendAgreement, SignAgreement
from coordreg_contracts.common import Party, Role
from coordreg_contracts.events import ObligationsTransferred, ObligationTransfer
from coordreg_contracts.parties import (
    PartyEvent,
    PartyKind,
    PartyRegistered,
    PartyRenamed,
    RecordSuccession,
    RegisterParty,
    RenameParty,
    SuccessionRecorded,
)

from services.agreement.state import AgreementState
from services.directory.state import PartyState
from services.registry.domain.errors import Conflict, NotFound, Rejected, Violation
from services.registry.domain.rules import not_an_agreement

# A succession chain longer than this is refused rather than followed (no real one comes close).
MAX_CHAIN = 64


@dataclass(frozen=True)
class Directory:
    """The directory entries a decision may need, by party id (None: not registered)."""

    entries: Mapping[str, PartyState | None] = field(default_factory=dict)

    def get(self, party_id: str) -> PartyState | None:
        return self.entries.get(party_id)


# A province's name as the directory stores it (the unit's name in Resolution 202/2025/QH15, or
# one of the 63 before it), None for a name that is no province: `services.directory.provinces`
# reads its data from the package, so the handler passes the lookup in.
ProvinceOf = Callable[[str], str | None]


def decide_register(
    command: RegisterParty, state: PartyState | None, party_id: str, province_of: ProvinceOf
) -> list[PartyEvent]:
    """`party_id`: the party whose stream the registration opens, the one the command names."""
    if command.party_id != party_id:
        raise Rejected([Violation(("party_id",), f"this registration is for {party_id!r}")])
    if state is not None:
        raise Conflict(f"party {command.party_id!r} is already in the directory")
    violations = []
    if command.kind is PartyKind.UNCLASSIFIED:
        violations.append(
            Violation(
                ("kind",), "'unclassified' is only for parties registered from a signing or an amendment"
            )
        )
    province = None if command.province is None else province_of(command.province)
    if command.province is not None and province is None:
        violations.append(
            Violation(
                ("province",), f"{command.province!r} is none of the provinces before or after 1 July 2025"
            )
        )
    if violations:
        raise Rejected(violations)
    return [PartyRegistered(**{**command.model_dump(), "province": province})]


def decide_rename(command: RenameParty, state: PartyState | None, party_id: str) -> list[PartyEvent]:
    entry = _existing(state, party_id)
    if entry.succession is not None:
        raise Conflict(f"party {party_id!r} ceased on {entry.succession.effective_on}; it cannot be renamed")
    if command.name == entry.name:
        raise Rejected([Violation(("name",), "this is already the party's name")])
    return [PartyRenamed(**command.model_dump())]


def decide_succession(
    command: RecordSuccession,
    state: PartyState | None,
    party_id: str,
    directory: Directory,
    agreements: Mapping[str, AgreementState],
) -> list[PartyEvent]:
    """`agreements`: every agreement that has ever named the party."""
    entry = _existing(state, party_id)
    if entry.succession is not None:
        raise Conflict(
            f"party {party_id!r} already ceased on {entry.succession.effective_on}"
            f" (succeeded by {entry.succession.successor_party_id!r}); a succession is recorded once"
        )
    violations = _successor_violations(
        command.successor_party_id, party_id, directory, ("successor_party_id",)
    )
    seen: set[tuple[str, str]] = set()
    for index, named in enumerate(command.obligation_successors):
        loc: tuple[str | int, ...] = ("obligation_successors", index)
        key = (named.agreement_id, named.obligation_id)
        agreement = agreements.get(named.agreement_id)
        if key in seen:
            violations.append(Violation(loc, f"obligation {named.obligation_id!r} is listed twice"))
        elif (refusal := not_an_agreement(named.agreement_id)) is not None:
            violations.append(Violation((*loc, "agreement_id"), refusal))
        elif agreement is None:
            violations.append(
                Violation((*loc, "agreement_id"), f"no agreement {named.agreement_id!r} names {party_id!r}")
            )
        elif named.obligation_id not in agreement.obligations:
            violations.append(Violation((*loc, "obligation_id"), f"no obligation {named.obligation_id!r}"))
        elif not _names(agreement, named.obligation_id, party_id):
            violations.append(
                Violation(
                    (*loc, "obligation_id"),
                    f"{party_id!r} neither leads nor supports {named.obligation_id!r}",
                )
            )
        seen.add(key)
        violations += _successor_violations(
            named.successor_party_id, party_id, directory, (*loc, "successor_party_id")
        )
    if agreements:
        earliest = min(a.signed_on for a in agreements.values())
        if command.effective_on < earliest:
            violations.append(
                Violation(
                    ("effective_on",),
                    f"effective_on is before {party_id!r} signed its earliest agreement ({earliest})",
                )
            )
    if violations:
        raise Rejected(violations)
    return [SuccessionRecorded(**command.model_dump())]


def _names(agreement: AgreementState, obligation_id: str, party_id: str) -> bool:
    ob = agreement.obligations[obligation_id].obligation
    return ob.lead_party_id == party_id or party_id in ob.supporting_party_ids


def _successor_violations(
    successor_id: str, party_id: str, directory: Directory, loc: tuple[str | int, ...]
) -> list[Violation]:
    if successor_id == party_id:
        return [Violation(loc, "a party cannot succeed itself (a cycle)")]
    successor = directory.get(successor_id)
    if successor is None:
        return [Violation(loc, f"no party {successor_id!r} is in the directory")]
    chain = [successor_id]
    while successor is not None and successor.succession is not None and len(chain) <= MAX_CHAIN:
        following = successor.succession.successor_party_id
        if following == party_id:
            path = " → ".join([party_id, *chain, party_id])
            return [Violation(loc, f"the succession would make a cycle: {path}")]
        chain.append(following)
        successor = directory.get(following)
    if len(chain) > 1:
        return [
            Violation(
                loc,
                f"{successor_id!r} has itself ceased; name the body that holds its functions now"
                f" ({chain[-1]!r})",
            )
        ]
    return []


def _existing(state: PartyState | None, party_id: str) -> PartyState:
    if state is None:
        raise NotFound(f"no party {party_id!r} in the directory")
    return state


def chain_ids(party_id: str, directory: Directory) -> list[str]:
    """The ids a decision must look at to follow `party_id`'s succession chain (bounded)."""
    ids = [party_id]
    entry = directory.get(party_id)
    while entry is not None and entry.succession is not None and len(ids) <= MAX_CHAIN:
        ids.append(entry.succession.successor_party_id)
        entry = directory.get(ids[-1])
    return ids


# --- signings ---------------------------------------------------------------------------------


def signing_violations(command: SignAgreement, directory: Directory) -> list[Violation]:
    """A party that ceased before the signing date cannot sign (its successor signs)."""
    return [
        Violation(("parties", index, "party_id"), _ceased(party.party_id, entry))
        for index, party in enumerate(command.parties)
        if (entry := directory.get(party.party_id)) is not None
        and entry.succession is not None
        and command.signed_on >= entry.succession.effective_on
    ]


def joining_parties(command: AmendAgreement) -> list[Party]:
    """The parties an amendment adds, in the order it names them."""
    return [change.party for change in command.changes if isinstance(change, AddParty)]


def joining_violations(command: AmendAgreement, directory: Directory) -> list[Violation]:
    """A party that has ceased cannot join an agreement, whatever the amendment's date: the
    amendment is made now, and its successor holds the functions now (decision 16)."""
    return [
        Violation(("changes", index, "party", "party_id"), _ceased(change.party.party_id, entry))
        for index, change in enumerate(command.changes)
        if isinstance(change, AddParty)
        and (entry := directory.get(change.party.party_id)) is not None
        and entry.succession is not None
    ]


def _ceased(party_id: str, entry: PartyState) -> str:
    assert entry.succession is not None
    return (
        f"{party_id!r} ceased on {entry.succession.effective_on}"
        f" ({entry.succession.legal_basis}); {entry.succession.successor_party_id!r} holds its functions"
    )


def registrations(
    parties: Iterable[Party],
    locality: str,
    agreement_id: str,
    directory: Directory,
    province_of: ProvinceOf,
) -> list[PartyRegistered]:
    """The parties a signing or an amendment names that the directory does not hold yet,
    registered from that agreement, each once."""
    unknown = {p.party_id: p for p in parties if directory.get(p.party_id) is None}
    return [
        PartyRegistered(
            party_id=party.party_id,
            name=party.name,
            kind=PartyKind.UNCLASSIFIED,
            province=province_of(locality),
            registered_from_agreement_id=agreement_id,
        )
        for party in unknown.values()
    ]


# --- the succession of one party into one agreement -------------------------------------------


def decide_transfer(
    agreement: AgreementState,
    predecessor: PartyState,
    succession_event_id: str,
    directory: Directory,
) -> list[ObligationsTransferred]:
    """The agreement's transfer of what `predecessor` held, or nothing when there is nothing to
    transfer: a closed agreement is never touched, and one the predecessor no longer belongs to
    (transferred already, or removed by an amendment) needs nothing. This is what makes the
    process manager idempotent: deciding again on the transferred state gives no event."""
    succession = predecessor.succession
    old = predecessor.party_id
    if succession is None or agreement.status == "closed" or old not in agreement.parties:
        return []
    moved = [
        ObligationTransfer(
            obligation_id=item.obligation_id,
            successor_party_id=succession.successor_for(agreement.agreement_id, item.obligation_id),
        )
        for item in agreement.obligations.values()
        if item.obligation.lead_party_id == old or old in item.obligation.supporting_party_ids
    ]
    was_lead = agreement.parties[old].role is Role.LEAD
    # Each successor once, however many obligations go to it (a comprehension's `not in` would
    # only see the default one).
    successor_ids = list(
        dict.fromkeys([succession.successor_party_id, *(m.successor_party_id for m in moved)])
    )
    successors = []
    for successor_id in successor_ids:
        role = Role.LEAD if was_lead and successor_id == succession.successor_party_id else None
        existing = agreement.parties.get(successor_id)
        if existing is not None:
            successors.append(existing if role is None else existing.model_copy(update={"role": role}))
            continue
        entry = directory.get(successor_id)
        name = entry.name if entry is not None else successor_id
        successors.append(Party(party_id=successor_id, name=name, role=role or Role.MEMBER))
    return [
        ObligationsTransferred(
            predecessor_party_id=old,
            effective_on=succession.effective_on,
            legal_basis=succession.legal_basis,
            succession_event_id=succession_event_id,
            successors=successors,
            obligations=moved,
        )
    ]
