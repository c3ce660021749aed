"""How large the log's records are in the demo (`make run`) and in the bench's workload (`make
bench`), against the 65,535 bytes an entry of a C2SP tlog-tiles bundle can hold (docs/adr/
0020-log-served-as-tiles.md gives the figures this prints).

A record is a leaf's data: the event's Kafka record value (StoredEvent.message()), the envelope
the store keeps with its position. Both are made here by the registry's own command bus over the
in-memory store, which seals and stores envelopes exactly as the PostgreSQL store does; only the
positions differ from a real run's, by a few digits at most.
"""

from __future__ import annotations

import uuid

from coordreg_contracts.commands import AmendAgreement, CloseTerm, ReportProgress, SignAgreement

from bench.workload import LIFE, Lives, run_tag
from services.registry import bootstrap
from services.registry.adapters.memory_store import InMemoryEventStore
from services.registry.service_layer.binding import Caller
from services.registry.service_layer.bus import CommandContext
from services.transparency.tiles import MAX_ENTRY_BYTES
from tests.support.demo import load_in_memory

COMMANDS: dict[str, type[ReportProgress | AmendAgreement | CloseTerm]] = {
    "report": ReportProgress,
    "amend": AmendAgreement,
    "close": CloseTerm,
}


def record_sizes(store: InMemoryEventStore) -> list[int]:
    return [len(event.message()) for stream in store.streams.values() for event in stream]


async def bench_store(agreements: int) -> InMemoryEventStore:
    """`agreements` whole lives of the bench's mixed workload (bench/workload.py LIFE), one per
    province in turn, numbered as a long run numbers them (six digits)."""
    registry, store = bootstrap.in_memory()
    lives = Lives(0, 1, run_tag(), life=list(LIFE), active=1)
    lives._made = 100_000  # the agreement numbers of a long run, so the longest document numbers
    for _ in range(agreements * len(LIFE)):
        agreement = lives.next()
        body = lives.body(agreement)
        context = CommandContext(Caller.in_process("bench"), str(uuid.uuid4()), str(uuid.uuid4()))
        if agreement.next_kind == "sign":
            result = await registry.bus.run(SignAgreement.model_validate(body), context)
        else:
            command = COMMANDS[agreement.next_kind].model_validate(body)
            result = await registry.bus.run(command, context, agreement.agreement_id)
        lives.advance(agreement, result.agreement_id)
    return store


async def test_the_demo_and_the_bench_records_fit_an_entry_bundle() -> None:
    demo = record_sizes((await load_in_memory()).store)
    bench = record_sizes(await bench_store(agreements=16))
    # The bench's signings register their parties in the directory too: more events than commands.
    assert len(demo) > 100 and len(bench) > 16 * len(LIFE)
    print(
        f"\nlargest record: demo {max(demo):,} bytes of {len(demo)} events (median "
        f"{sorted(demo)[len(demo) // 2]:,}); bench {max(bench):,} bytes of {len(bench)} events (median "
        f"{sorted(bench)[len(bench) // 2]:,}); an entry holds {MAX_ENTRY_BYTES:,}"
    )
    # With room to spare: the demo's and the bench's logs are served whole as entry bundles.
    assert max(demo) < MAX_ENTRY_BYTES // 4
    assert max(bench) < MAX_ENTRY_BYTES // 4
