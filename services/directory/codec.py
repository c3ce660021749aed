"""A party's directory entry as JSON: the parts every shape of it is written with. Pure.

The registry's view (services/registry/entrypoints/views.py) and the projections' `parties` row
(services/projections/readmodel/apply.py, `party_row`, read back by `party_state`) write a
party's names and its obligation successors alike; each is written here once.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from coordreg_contracts.parties import ObligationSuccessor

from services.directory.state import Naming, Succession


def naming_json(n: Naming) -> dict[str, Any]:
    return {
        "name": n.name,
        "effective_on": n.effective_on.isoformat() if n.effective_on else None,
        "legal_basis": n.legal_basis,
    }


def naming_from_json(d: Mapping[str, Any]) -> Naming:
    return Naming(
        d["name"], date.fromisoformat(d["effective_on"]) if d["effective_on"] else None, d["legal_basis"]
    )


def obligation_successors_json(s: Succession) -> list[dict[str, Any]]:
    return [named.model_dump(mode="json") for named in s.obligation_successors]


def obligation_successors_from_json(raw: list[Mapping[str, Any]]) -> tuple[ObligationSuccessor, ...]:
    return tuple(ObligationSuccessor.model_validate(named) for named in raw)
