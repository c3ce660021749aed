"""The demo data (the five articles' agreements and their lives) obeys every rule of the domain."""

from __future__ import annotations

from coordreg_contracts.commands import AmendAgreement, CloseTerm, ReportProgress, SignAgreement

from deploy.demo.load import PATHS, demo_agreements, demo_lifecycle, resolve
from services.agreement.state import AgreementState, evolve
from services.registry.domain.decide import Known, decide


def test_demo_agreements_and_lifecycle_replay_through_decide() -> None:
    """The loader's own data, references resolved by the loader's own resolver."""
    agreements, lifecycle = demo_agreements(), demo_lifecycle()
    ids: dict[str, str] = {}
    states: dict[str, AgreementState] = {}
    for item in agreements:
        agreement_id = f"id-{item['key']}"
        known = Known(agreement_id, frozenset(ids.values()))
        [event] = decide(SignAgreement.model_validate(resolve(item["body"], ids)), None, known)
        ids[item["key"]] = agreement_id
        states[agreement_id] = evolve(None, event)
    commands: dict[str, type[AmendAgreement | ReportProgress | CloseTerm]] = {
        "amend": AmendAgreement,
        "report": ReportProgress,
        "close": CloseTerm,
    }
    assert set(commands) == set(PATHS), "every action the loader posts is replayed here"
    for entry in lifecycle:
        agreement_id = ids[entry["agreement"]]
        command = commands[entry["action"]].model_validate(resolve(entry["body"], ids))
        for event in decide(command, states[agreement_id], Known(agreement_id, frozenset(ids.values()))):
            states[agreement_id] = evolve(states[agreement_id], event)
    assert len(agreements) >= 10
    assert sum(1 for s in states.values() if s.status == "closed") >= 1
    localities = {s.locality for s in states.values()}
    assert {"Hòa Bình", "Bình Định", "Thái Nguyên", "Bắc Kạn", "Lào Cai"} <= localities
