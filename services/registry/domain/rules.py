"""The signing rules of docs/CONTRACT.md, checked on a whole agreement.

They hold at signing and after every amendment; each breach names the field path
(relative to the request body) so a caller can point at the offending input.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

from coordreg_contracts.common import Obligation, Party, Role, Term
from coordreg_contracts.parties import is_party_subject

from services.registry.domain.errors import Loc, Violation


def party_violations(parties: Sequence[Party], prefix: Loc = ("parties",)) -> list[Violation]:
    violations: list[Violation] = []
    if len(parties) < 2:
        violations.append(Violation(prefix, "an agreement needs at least two parties"))
    seen: set[str] = set()
    for index, party in enumerate(parties):
        if party.party_id in seen:
            violations.append(
                Violation((*prefix, index, "party_id"), f"duplicate party_id {party.party_id!r}")
            )
        seen.add(party.party_id)
    leads = [p for p in parties if p.role is Role.LEAD]
    if len(leads) != 1:
        violations.append(Violation(prefix, f"exactly one party must have role 'lead' (found {len(leads)})"))
    return violations


def obligation_violations(
    obligation: Obligation, party_ids: Mapping[str, object] | set[str], loc: Loc
) -> list[Violation]:
    violations: list[Violation] = []
    if obligation.lead_party_id not in party_ids:
        violations.append(
            Violation(
                (*loc, "lead_party_id"), f"{obligation.lead_party_id!r} is not a party of the agreement"
            )
        )
    seen: set[str] = set()
    for index, supporter in enumerate(obligation.supporting_party_ids):
        where = (*loc, "supporting_party_ids", index)
        if supporter not in party_ids:
            violations.append(Violation(where, f"{supporter!r} is not a party of the agreement"))
        elif supporter == obligation.lead_party_id:
            violations.append(
                Violation(where, f"{supporter!r} leads this obligation and cannot also support it")
            )
        elif supporter in seen:
            violations.append(Violation(where, f"{supporter!r} is listed twice"))
        seen.add(supporter)
    return violations


def obligations_violations(
    obligations: Sequence[Obligation], party_ids: set[str], prefix: Loc = ("obligations",)
) -> list[Violation]:
    violations: list[Violation] = []
    if not obligations:
        violations.append(Violation(prefix, "an agreement needs at least one obligation"))
    seen: set[str] = set()
    for index, obligation in enumerate(obligations):
        if obligation.obligation_id in seen:
            violations.append(
                Violation(
                    (*prefix, index, "obligation_id"), f"duplicate obligation_id {obligation.obligation_id!r}"
                )
            )
        seen.add(obligation.obligation_id)
        violations.extend(obligation_violations(obligation, party_ids, (*prefix, index)))
    return violations


def term_violations(signed_on: date, term: Term, loc: Loc = ("signed_on",)) -> list[Violation]:
    if signed_on > term.end:
        return [Violation(loc, f"signed_on {signed_on} is after the end of the term {term.end}")]
    return []


def not_an_agreement(reference: str) -> str | None:
    """Why `reference` cannot name an agreement, or None. The store holds the party directory's
    streams (`party/<id>`) beside the agreements, so a reference that exists may still be one."""
    if is_party_subject(reference):
        return f"{reference!r} is a party's directory stream, not an agreement"
    return None
