"""The cost of one command on a cold agreement, by the length of its stream.

"Cold": nothing of the agreement is cached in the registry process, as after a restart or once
the repository's LRU let it go. For each size an agreement is signed through the command bus
(which registers its parties) and then given its progress reports straight through
`PostgresEventStore.append` (real envelopes: decide -> evolve -> seal, bench/events.py's way).
Then one more report is timed through the in-process command bus, `repeats` times, each on a
new bus and repository, measured twice on agreements of their own:
- `with_snapshots`: the steady state, the agreement's snapshot written beforehand (by a cold
  load, as the registry writes them);
- `without_snapshots`: the repository reading no snapshot (what every cold load cost before).

Each timed command appends an event, so the stream of the `n`-event agreement is `n` .. `n +
repeats - 1` long while it is measured; with snapshots, the tail folded after the snapshot
grows the same way (0 .. repeats - 1 events) whatever the size.

    from bench.cold import cold_command_costs
    figures = await cold_command_costs(database_url, sizes=(10, 1_000, 10_000), repeats=20)
"""

from __future__ import annotations

import random
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import asyncpg
from coordreg_contracts.commands import ReportProgress, SignAgreement
from coordreg_contracts.envelope import Envelope, seal

from bench.workload import report_body, sign_body
from services.agreement.state import AgreementState, evolve
from services.common.db import create_pool, migrate
from services.registry.adapters.postgres_idempotency import PostgresIdempotencyStore
from services.registry.adapters.postgres_store import PostgresEventStore
from services.registry.bootstrap import command_bus
from services.registry.domain.decide import StoreFacts, decide
from services.registry.migrations import MIGRATIONS
from services.registry.refusals import refusal_status_and_body
from services.registry.service_layer.binding import Caller
from services.registry.service_layer.bus import CommandBus, CommandContext, utc_now
from services.registry.service_layer.repository import AgreementRepository

# Events per append while building a long stream: one transaction each, of a sane size.
CHUNK = 500
# The agreement of index 0 in bench/workload.py: its parties report the way `report_body` says.
INDEX = 0
MODES = {"with_snapshots": 100, "without_snapshots": None}


def _context(actor: str) -> CommandContext:
    return CommandContext(
        caller=Caller.in_process(actor), correlation_id=str(uuid.uuid4()), causation_id=str(uuid.uuid4())
    )


def _bus(pool: asyncpg.Pool, snapshot_every: int | None) -> CommandBus:
    """A registry's command bus as bootstrap wires it, its repository new (nothing cached)."""
    store = PostgresEventStore(pool)
    agreements = AgreementRepository(store, snapshot_every=snapshot_every)
    return command_bus(store, PostgresIdempotencyStore(pool), refusal_status_and_body, agreements=agreements)


async def _agreement_of(
    pool: asyncpg.Pool, size: int, tag: str, rng: random.Random, progress: Callable[[str], None]
) -> tuple[str, int]:
    """A signed agreement with `size` events in all; returns its id and the reports made."""
    bus = _bus(pool, None)
    signing = SignAgreement.model_validate(sign_body(INDEX, tag))
    agreement_id = (await bus.run(signing, _context("bench-cold"))).agreement_id
    loaded = await bus.agreements.get(agreement_id)
    assert loaded.state is not None
    state: AgreementState = loaded.state
    prevhash, stored, reports = loaded.last_hash, state.version, 0
    store = PostgresEventStore(pool)
    chunk: list[Envelope] = []
    while state.version < size:
        command = ReportProgress.model_validate(report_body(INDEX, reports, rng))
        reports += 1
        for event in decide(command, state, StoreFacts(agreement_id)):
            envelope = seal(
                event=event,
                event_id=str(uuid.uuid4()),
                agreement_id=agreement_id,
                sequence=state.version + 1,
                recorded_at=utc_now(),
                prevhash=prevhash,
                actor="bench-cold",
                correlation_id=str(uuid.uuid4()),
                causation_id=str(uuid.uuid4()),
            )
            chunk.append(envelope)
            prevhash = envelope.hash
            state = evolve(state, event)
        if len(chunk) >= CHUNK or state.version >= size:
            await store.append(agreement_id, stored, chunk)
            stored, chunk = state.version, []
            if size >= 5 * CHUNK:
                progress(f"cold commands: {stored:,} of {size:,} events")
    return agreement_id, reports


async def _time_commands(
    pool: asyncpg.Pool,
    agreement_id: str,
    reports: int,
    repeats: int,
    snapshot_every: int | None,
    rng: random.Random,
) -> list[float]:
    seconds = []
    for n in range(repeats):
        bus = _bus(pool, snapshot_every)
        command = ReportProgress.model_validate(report_body(INDEX, reports + n, rng))
        context = _context("bench-cold")
        began = time.perf_counter()
        await bus.run(command, context, agreement_id)
        seconds.append(time.perf_counter() - began)
    return seconds


async def cold_command_costs(
    database_url: str,
    sizes: Sequence[int] = (10, 1_000, 10_000),
    *,
    repeats: int = 20,
    progress: Callable[[str], None] = lambda message: print(f"[bench] {message}", flush=True),
) -> dict[str, Any]:
    """Median milliseconds of one command on a cold agreement of each size, and the ratio of
    each to the smallest size's, with and without snapshots (the module docstring).

    Migrates the registry schema of `database_url` if needed; the agreements it signs stay
    there (document numbers tagged per run, so runs do not collide)."""
    pool = await create_pool(database_url, min_size=2, max_size=4)
    try:
        await migrate(pool, "registry", MIGRATIONS)
        tag = f"COLD-{uuid.uuid4().hex[:8].upper()}"
        rng = random.Random(0)
        figures: dict[str, Any] = {"repeats": repeats, "sizes": list(sizes)}
        # Untimed: the first commands of a process pay for imports, caches and prepared statements.
        warm_up, reports = await _agreement_of(pool, 10, f"{tag}-warm-up", rng, progress)
        for snapshot_every in MODES.values():
            await _time_commands(pool, warm_up, reports, 5, snapshot_every, rng)
            reports += 5
        for mode, snapshot_every in MODES.items():
            medians: dict[str, float] = {}
            for size in sizes:
                progress(f"cold commands: building a {size:,}-event agreement ({mode})")
                agreement_id, reports = await _agreement_of(pool, size, f"{tag}-{mode}-{size}", rng, progress)
                if snapshot_every is not None:
                    # The steady state: the snapshot a first cold load leaves (none below the threshold).
                    await AgreementRepository(PostgresEventStore(pool), snapshot_every=snapshot_every).get(
                        agreement_id
                    )
                seconds = await _time_commands(pool, agreement_id, reports, repeats, snapshot_every, rng)
                medians[str(size)] = round(1000 * statistics.median(seconds), 3)
                progress(f"cold commands: {size:,} events, {mode}: median {medians[str(size)]} ms")
            base = medians[str(sizes[0])]
            figures[mode] = {
                "median_ms": medians,
                "ratio_to_smallest": {size: round(ms / base, 2) for size, ms in medians.items()},
            }
        figures["snapshots"] = [
            dict(r)
            for r in await pool.fetch("SELECT stream_id, version, model_version FROM registry.snapshots")
        ]
        return figures
    finally:
        await pool.close()
