"""Real, sealed event envelopes made in memory by the registry's own domain code.

The ceilings insert and produce exactly these rows and messages, and the replay figure
appends them through `PostgresEventStore` (each agreement's whole life in one append):
decide -> evolve -> seal, as the command handler does, without HTTP or a store read.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg
from coordreg_contracts.commands import AmendAgreement, CloseTerm, Command, ReportProgress, SignAgreement
from coordreg_contracts.envelope import Envelope, canonical_json, seal

from bench.workload import LIFE, amend_body, close_body, report_body, sign_body
from services.agreement.state import AgreementState, evolve
from services.registry.adapters.postgres_store import PostgresEventStore
from services.registry.domain.decide import StoreFacts, decide
from services.registry.service_layer.bus import utc_now
from services.registry.service_layer.event_store import DocumentClaim


@dataclass
class Life:
    agreement_id: str
    claim: DocumentClaim
    envelopes: list[Envelope]

    def rows(self) -> list[tuple[str, int, str, str, str, str]]:
        """(agreement_id, sequence, event_id, type, time, envelope text) per event."""
        return [
            (
                self.agreement_id,
                e.sequence,
                e.id,
                e.type,
                e.time,
                canonical_json(e.without_position()).decode("utf-8"),
            )
            for e in self.envelopes
        ]


def command_for(kind: str, index: int, nth_report: int, tag: str, rng: random.Random) -> Command:
    if kind == "sign":
        return SignAgreement.model_validate(sign_body(index, tag))
    if kind == "report":
        return ReportProgress.model_validate(report_body(index, nth_report, rng))
    if kind == "amend":
        return AmendAgreement.model_validate(amend_body(index))
    return CloseTerm.model_validate(close_body())


def make_life(index: int, tag: str, life: list[str] = LIFE, actor: str = "bench-generator") -> Life:
    rng = random.Random(index)
    agreement_id = str(uuid.uuid4())
    state: AgreementState | None = None
    prevhash = ""
    envelopes: list[Envelope] = []
    reports = 0
    claim = DocumentClaim("", "", 0)
    for kind in life:
        command = command_for(kind, index, reports, tag, rng)
        if isinstance(command, SignAgreement):
            claim = DocumentClaim(command.locality, command.document_number, command.signed_on.year)
        reports += kind == "report"
        for event in decide(command, state, StoreFacts(agreement_id)):
            envelope = seal(
                event=event,
                event_id=str(uuid.uuid4()),
                agreement_id=agreement_id,
                sequence=len(envelopes) + 1,
                recorded_at=utc_now(),
                prevhash=prevhash,
                actor=actor,
                correlation_id=str(uuid.uuid4()),
                causation_id=str(uuid.uuid4()),
            )
            envelopes.append(envelope)
            prevhash = envelope.hash
            state = evolve(state, event)
    return Life(agreement_id, claim, envelopes)


def make_lives(count: int, tag: str, progress: Callable[[int], None] | None = None) -> list[Life]:
    lives = []
    for index in range(count):
        lives.append(make_life(index, tag))
        if progress is not None and index % 500 == 499:
            progress(index + 1)
    return lives


async def append_lives(
    dsn: str,
    lives: list[Life],
    concurrency: int,
    report: Callable[[int, float], None],
) -> float:
    """Appends each life in one `PostgresEventStore.append` (events + outbox + claim, one
    transaction), `concurrency` at a time; returns the seconds taken."""
    pool = await asyncpg.create_pool(dsn, min_size=concurrency, max_size=concurrency)
    assert pool is not None
    store = PostgresEventStore(pool)
    queue: asyncio.Queue[Life] = asyncio.Queue()
    for life in lives:
        queue.put_nowait(life)
    done = {"events": 0}
    started = time.perf_counter()

    async def worker() -> None:
        while not queue.empty():
            life = queue.get_nowait()
            await store.append(life.agreement_id, 0, life.envelopes, life.claim)
            done["events"] += len(life.envelopes)

    async def ticker() -> None:
        while True:
            await asyncio.sleep(2)
            report(done["events"], time.perf_counter() - started)

    tick = asyncio.create_task(ticker())
    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        tick.cancel()
        await pool.close()
    return time.perf_counter() - started
