"""The six ways an amendment can change an agreement (value objects of commands and events)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from coordreg_contracts.common import (
    MAX_PARTIES,
    Cadence,
    Frozen,
    LongText,
    Obligation,
    Party,
    Slug,
    Term,
    Title,
)


class AddObligation(Frozen):
    op: Literal["add_obligation"]
    obligation: Obligation


class ReviseObligation(Frozen):
    """Changes only the fields it names; a field left out (or null) keeps its value."""

    op: Literal["revise_obligation"]
    obligation_id: Slug
    title: Title | None = None
    description: LongText | None = None
    lead_party_id: Slug | None = None
    supporting_party_ids: Annotated[list[Slug], Field(max_length=MAX_PARTIES)] | None = None
    cadence: Cadence | None = None


class WithdrawObligation(Frozen):
    op: Literal["withdraw_obligation"]
    obligation_id: Slug
    reason: LongText | None = None


class AddParty(Frozen):
    op: Literal["add_party"]
    party: Party


class RemoveParty(Frozen):
    op: Literal["remove_party"]
    party_id: Slug


class ChangeTerm(Frozen):
    op: Literal["change_term"]
    term: Term


Change = Annotated[
    AddObligation | ReviseObligation | WithdrawObligation | AddParty | RemoveParty | ChangeTerm,
    Field(discriminator="op"),
]


CHANGE_OPS: frozenset[str] = frozenset(
    op
    for model in (AddObligation, ReviseObligation, WithdrawObligation, AddParty, RemoveParty, ChangeTerm)
    for op in model.model_fields["op"].annotation.__args__  # type: ignore[union-attr]
)
