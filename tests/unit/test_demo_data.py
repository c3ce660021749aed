"""The demo data (the five articles' agreements and their lives) obeys every rule of the domain."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from coordreg_contracts.commands import AmendAgreement, CloseTerm, ReportProgress, SignAgreement

from services.agreement.state import AgreementState, evolve
from services.registry.domain.decide import Known, decide

DEMO = Path(__file__).resolve().parents[2] / "deploy" / "demo"


def resolve(body: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
    resolved = dict(body)
    for field in ("parent_agreement_id", "successor_agreement_id"):
        value = resolved.get(field)
        if isinstance(value, str) and value.startswith("@"):
            resolved[field] = ids[value[1:]]
    return resolved


def test_demo_agreements_and_lifecycle_replay_through_decide() -> None:
    agreements = json.loads((DEMO / "agreements.json").read_text(encoding="utf-8"))
    lifecycle = json.loads((DEMO / "lifecycle.json").read_text(encoding="utf-8"))
    ids: dict[str, str] = {}
    states: dict[str, AgreementState] = {}
    for item in agreements:
        agreement_id = f"id-{item['key']}"
        known = Known(agreement_id, frozenset(ids.values()))
        [event] = decide(SignAgreement.model_validate(resolve(item["body"], ids)), None, known)
        ids[item["key"]] = agreement_id
        states[agreement_id] = evolve(None, event)
    commands = {"amend": AmendAgreement, "report": ReportProgress, "close": CloseTerm}
    for entry in lifecycle:
        agreement_id = ids[entry["agreement"]]
        command = commands[entry["action"]].model_validate(resolve(entry["body"], ids))
        for event in decide(command, states[agreement_id], Known(agreement_id, frozenset(ids.values()))):
            states[agreement_id] = evolve(states[agreement_id], event)
    assert len(agreements) >= 10
    assert sum(1 for s in states.values() if s.status == "closed") >= 1
    localities = {s.locality for s in states.values()}
    assert {"Hòa Bình", "Bình Định", "Thái Nguyên", "Bắc Kạn", "Lào Cai"} <= localities
