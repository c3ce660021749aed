"""The demo data folded through the pure domain, as the demo loader would post it (no I/O)."""

from __future__ import annotations

from coordreg_contracts.commands import AmendAgreement, CloseTerm, ReportProgress, SignAgreement

from deploy.demo.load import demo_agreements, demo_lifecycle, resolve
from services.agreement.state import AgreementState, evolve
from services.registry.domain.decide import Known, decide

# The command each loader action posts (deploy/demo/load.py's PATHS names the same actions).
COMMANDS: dict[str, type[AmendAgreement | ReportProgress | CloseTerm]] = {
    "amend": AmendAgreement,
    "report": ReportProgress,
    "close": CloseTerm,
}


def demo_states() -> dict[str, AgreementState]:
    """Every demo agreement's state after its whole lifecycle, by demo key; `decide` refusing
    any command raises, so this also checks the data against every rule."""
    ids: dict[str, str] = {}
    states: dict[str, AgreementState] = {}
    for item in demo_agreements():
        agreement_id = f"id-{item['key']}"
        known = Known(agreement_id, frozenset(ids.values()))
        [event] = decide(SignAgreement.model_validate(resolve(item["body"], ids)), None, known)
        ids[item["key"]] = agreement_id
        states[agreement_id] = evolve(None, event)
    for entry in demo_lifecycle():
        agreement_id = ids[entry["agreement"]]
        command = COMMANDS[entry["action"]].model_validate(resolve(entry["body"], ids))
        for event in decide(command, states[agreement_id], Known(agreement_id, frozenset(ids.values()))):
            states[agreement_id] = evolve(states[agreement_id], event)
    return {key: states[agreement_id] for key, agreement_id in ids.items()}
