"""The demo data folded through the pure domain, as the demo loader would post it (no I/O), and
the whole demo loaded into an in-memory registry through its command bus."""

from __future__ import annotations

from dataclasses import dataclass

from coordreg_contracts.commands import AmendAgreement, CloseTerm, ReportProgress, SignAgreement
from coordreg_contracts.parties import RecordSuccession, RegisterParty

from deploy.demo.load import demo_agreements, demo_lifecycle, demo_parties, demo_successions, resolve
from services.agreement.state import AgreementState, evolve
from services.registry import bootstrap
from services.registry.adapters.memory_store import InMemoryEventStore
from services.registry.bootstrap import Registry
from services.registry.domain.decide import StoreFacts, decide
from services.registry.service_layer.binding import Caller
from services.registry.service_layer.bus import CommandContext
from services.registry.service_layer.successions import Carried

# The command each loader action posts (deploy/demo/load.py's PATHS names the same actions).
COMMANDS: dict[str, type[AmendAgreement | ReportProgress | CloseTerm]] = {
    "amend": AmendAgreement,
    "report": ReportProgress,
    "close": CloseTerm,
}
DEMO_CONTEXT = CommandContext(Caller.in_process("demo-client"), correlation_id="demo", causation_id="demo")


def demo_states() -> dict[str, AgreementState]:
    """Every demo agreement's state after its whole lifecycle, by demo key; `decide` refusing
    any command raises, so this also checks the data against every rule."""
    ids: dict[str, str] = {}
    states: dict[str, AgreementState] = {}
    for item in demo_agreements():
        agreement_id = f"id-{item['key']}"
        known = StoreFacts(agreement_id, frozenset(ids.values()))
        [event] = decide(SignAgreement.model_validate(resolve(item["body"], ids)), None, known)
        ids[item["key"]] = agreement_id
        states[agreement_id] = evolve(None, event)
    for entry in demo_lifecycle():
        agreement_id = ids[entry["agreement"]]
        command = COMMANDS[entry["action"]].model_validate(resolve(entry["body"], ids))
        for event in decide(command, states[agreement_id], StoreFacts(agreement_id, frozenset(ids.values()))):
            states[agreement_id] = evolve(states[agreement_id], event)
    return {key: states[agreement_id] for key, agreement_id in ids.items()}


@dataclass(frozen=True)
class LoadedDemo:
    registry: Registry
    store: InMemoryEventStore
    ids: dict[str, str]  # agreement id by demo key
    carried: list[Carried]  # what the succession manager did

    async def state(self, key: str) -> AgreementState:
        loaded = (await self.registry.agreements.get(self.ids[key])).state
        assert loaded is not None
        return loaded


async def load_in_memory() -> LoadedDemo:
    """The loader's steps in the loader's order, each through the command bus (a refusal raises),
    then the succession manager's pending work, as the registry's background loop would do it."""
    registry, store = bootstrap.in_memory()
    ids: dict[str, str] = {}
    for item in demo_agreements():
        signed = await registry.bus.run(
            SignAgreement.model_validate(resolve(item["body"], ids)), DEMO_CONTEXT
        )
        ids[item["key"]] = signed.agreement_id
    for entry in demo_lifecycle():
        command = COMMANDS[entry["action"]].model_validate(resolve(entry["body"], ids))
        await registry.bus.run(command, DEMO_CONTEXT, ids[entry["agreement"]])
    for body in demo_parties():
        await registry.bus.run_directory(RegisterParty.model_validate(body), DEMO_CONTEXT, body["party_id"])
    for item in demo_successions():
        succession = RecordSuccession.model_validate(item["body"])
        await registry.bus.run_directory(succession, DEMO_CONTEXT, item["party_id"])
    carried = await registry.successions.run_pending()
    return LoadedDemo(registry, store, ids, carried)
