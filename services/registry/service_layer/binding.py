"""Party binding (docs/CONTRACT.md, "Clients"): a client acts only for the parties it holds.

- sign: the client holds the new agreement's lead party;
- amend, close: the client holds one of the agreement's *current* parties, on the very state
  the command is decided on (a party added by an amendment may amend, a removed one no longer
  may, even when the removal commits while its command is on its way);
- report progress: the client holds the reporting `party_id` (that this party leads or supports
  the obligation is a domain rule, 422).
Pure checks: the command bus calls them under the agreement's lock, on the state it decides on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from coordreg_contracts.commands import ReportProgress, SignAgreement
from coordreg_contracts.common import Role

from services.agreement.state import AgreementState


@dataclass(frozen=True)
class Caller:
    """Who sends the command: the client id (the events' `actor`) and the parties it holds."""

    client_id: str
    party_ids: frozenset[str]
    # In-process callers only (load generators, benchmarks, tests): never built from a token.
    acts_for_every_party: bool = False

    @classmethod
    def in_process(cls, client_id: str) -> Caller:
        return cls(client_id, frozenset(), acts_for_every_party=True)

    def holds(self, party_id: str) -> bool:
        return self.acts_for_every_party or party_id in self.party_ids

    def holds_any(self, party_ids: Iterable[str]) -> bool:
        return self.acts_for_every_party or not self.party_ids.isdisjoint(party_ids)


class PartyNotHeld(Exception):
    """The client does not act for the party the command needs (HTTP 403)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def check_signing(caller: Caller, command: SignAgreement) -> None:
    """Without exactly one lead the signing breaks a rule (422 from the domain): then holding a
    lead, or any party when none is named lead (or no party at all), lets the caller hear which."""
    leads = [p.party_id for p in command.parties if p.role == Role.LEAD]
    if len(leads) == 1 and not caller.holds(leads[0]):
        raise PartyNotHeld(f"this client does not act for {leads[0]!r}, the lead party of the agreement")
    if command.parties and not caller.holds_any(leads or [p.party_id for p in command.parties]):
        raise PartyNotHeld("this client acts for none of the agreement's lead parties")


def check_current_party(caller: Caller, state: AgreementState) -> None:
    if not caller.holds_any(state.parties):
        raise PartyNotHeld(f"this client acts for none of the parties of agreement {state.agreement_id!r}")


def check_reporter(caller: Caller, command: ReportProgress) -> None:
    if not caller.holds(command.party_id):
        raise PartyNotHeld(f"this client does not act for {command.party_id!r}")
