"""A load generator that drives the command handler directly (no HTTP, no auth).

The events it produces go through the real event store (events + outbox in one
transaction), so the relay publishes them and the live projection applies them exactly
as in production. Each agreement lives a small, valid life: signed, amended (an
obligation added, revised, another withdrawn), reported on period after period by its
lead and supporters, and sometimes closed.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from coordreg_contracts.commands import AmendAgreement, CloseTerm, Command, ReportProgress, SignAgreement
from coordreg_contracts.common import Outcome

from deploy.demo.samples import PROVINCES
from services.agreement.state import evolve
from services.registry import bootstrap
from services.registry.adapters.postgres_idempotency import PostgresIdempotencyStore
from services.registry.adapters.postgres_store import PostgresEventStore
from services.registry.domain.decide import StoreFacts, decide
from services.registry.service_layer.binding import Caller
from services.registry.service_layer.bus import CommandContext, seal_events, utc_now

MEMBERS = ["hctd", "hlhpn", "doan-tn", "hoi-nd", "ldld", "nhcsxh", "so-ldtbxh", "bao-tinh"]
STATUSES = ["not_started", "in_progress", "in_progress", "at_risk", "blocked", "completed"]
QUARTERS = [f"{year}-Q{q}" for year in (2023, 2024, 2025, 2026) for q in (1, 2, 3, 4)]


@dataclass
class LoadResult:
    agreements: list[str] = field(default_factory=list)
    commands: int = 0
    events: int = 0
    last_position: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def sign_command(index: int, tag: str, rng: random.Random) -> SignAgreement:
    province, slug = PROVINCES[index % len(PROVINCES)]
    lead = f"mttq-{slug}"
    members = rng.sample(MEMBERS, 2)
    member_ids = [f"{m}-{slug}" for m in members]
    return SignAgreement.model_validate(
        {
            "document_number": f"{index}/CTPH-{tag}",
            "kind": rng.choice(["program", "regulation", "plan", "joint_resolution"]),
            "title": f"Chương trình phối hợp số {index} về công tác vì người nghèo và an sinh xã hội",
            "locality": province,
            "signed_on": "2023-01-15",
            "term": {"start": "2023-01-01", "end": "2027-12-31"},
            "parties": [
                {
                    "party_id": lead,
                    "name": f"Ủy ban MTTQ Việt Nam tỉnh {province}",
                    "role": "lead",
                    "signatory": {"name": "Nguyễn Văn An", "title": "Chủ tịch"},
                },
                *({"party_id": pid, "name": f"Tổ chức {pid}", "role": "member"} for pid in member_ids),
            ],
            "legal_basis": [{"reference": "40-CT/TW", "issued_on": "2014-11-22", "issuer": "Ban Bí thư"}],
            "obligations": [
                {
                    "obligation_id": "nhan-dao",
                    "title": "Tổ chức hoạt động nhân đạo, từ thiện",
                    "lead_party_id": lead,
                    "supporting_party_ids": [member_ids[0]],
                    "cadence": "quarterly",
                },
                {
                    "obligation_id": "tuyen-truyen",
                    "title": "Công tác tuyên truyền",
                    "lead_party_id": member_ids[1],
                    "supporting_party_ids": [lead],
                    "cadence": "quarterly",
                },
                {
                    "obligation_id": "giam-sat",
                    "title": "Giám sát thực hiện chính sách",
                    "lead_party_id": lead,
                    "supporting_party_ids": member_ids,
                    "cadence": "annual",
                },
            ],
        }
    )


def life(sign: SignAgreement, length: int, rng: random.Random) -> list[Command]:
    """`length - 1` valid commands after the signing."""
    lead = sign.parties[0].party_id
    member_ids = [p.party_id for p in sign.parties[1:]]
    reporters = {
        "nhan-dao": [lead, member_ids[0]],
        "tuyen-truyen": [member_ids[1], lead],
        "chuyen-doi-so": [member_ids[0], lead],
    }
    commands: list[Command] = []
    active = ["nhan-dao", "tuyen-truyen"]
    supervising = True  # giam-sat until it is withdrawn
    quarter = 0
    step = 0
    while len(commands) < length - 1:
        step += 1
        if step == 4:
            commands.append(_amend("add_obligation", lead, member_ids))
            active.append("chuyen-doi-so")
        elif step == 9:
            commands.append(_amend("revise_obligation", lead, member_ids))
        elif step == 14:
            commands.append(_amend("withdraw_obligation", lead, member_ids))
            supervising = False
        elif step % 7 == 0 and supervising:
            year = 2023 + (step // 7) % 4
            party = rng.choice([lead, *member_ids])
            commands.append(_report("giam-sat", party, str(year), rng))
        else:
            obligation = active[step % len(active)]
            period = QUARTERS[quarter % len(QUARTERS)]
            quarter += 1 if step % 3 == 0 else 0
            commands.append(_report(obligation, rng.choice(reporters[obligation]), period, rng))
    return commands


def _amend(op: str, lead: str, member_ids: list[str]) -> AmendAgreement:
    change: dict[str, Any]
    if op == "add_obligation":
        change = {
            "op": op,
            "obligation": {
                "obligation_id": "chuyen-doi-so",
                "title": "Chuyển đổi số trong công tác phối hợp",
                "lead_party_id": member_ids[0],
                "supporting_party_ids": [lead],
                "cadence": "quarterly",
            },
        }
    elif op == "revise_obligation":
        change = {"op": op, "obligation_id": "nhan-dao", "title": "Hoạt động nhân đạo và cứu trợ đột xuất"}
    else:
        change = {"op": op, "obligation_id": "giam-sat", "reason": "Chuyển sang chương trình giám sát riêng"}
    return AmendAgreement.model_validate(
        {
            "document_number": f"{op[:3].upper()}/QĐ-MTTQ",
            "reason": "Điều chỉnh nội dung phối hợp",
            "effective_on": "2024-03-01",
            "changes": [change],
        }
    )


def _report(obligation: str, party: str, period: str, rng: random.Random) -> ReportProgress:
    return ReportProgress.model_validate(
        {
            "obligation_id": obligation,
            "party_id": party,
            "period": period,
            "status": rng.choice(STATUSES),
            "completion_percent": rng.randrange(0, 101, 5),
            "summary": "Báo cáo tiến độ thực hiện",
            "reported_on": "2027-06-30",
        }
    )


async def generate(
    pool: asyncpg.Pool,
    *,
    agreements: int = 2000,
    events_per_agreement: int = 25,
    concurrency: int = 48,
    tag: str = "LOAD",
    seed: int = 7,
    close_every: int = 10,
    chunk: int = 1,
    clock: Callable[[], str] = utc_now,
    on_progress: Callable[[int], None] | None = None,
) -> LoadResult:
    """Signs `agreements` agreements and gives each `events_per_agreement` events in all.

    Every signing is a command through the command bus. With `chunk` = 1 every later
    command is one too (load, decide, seal, append: one transaction each). With `chunk` > 1
    the later commands are decided by the same pure `decide` on the folded state, sealed
    into the hash chain with the same `seal`, and appended `chunk` events per transaction
    through the same `PostgresEventStore.append` (events + outbox rows): the log, the
    relay and the projections see exactly what the commands would have produced, at a
    fraction of the round trips.
    """
    store = PostgresEventStore(pool)
    registry = bootstrap.bootstrap(store, PostgresIdempotencyStore(pool), clock=clock)
    context = CommandContext(
        Caller.in_process("load-generator"), correlation_id=f"load-{tag}", causation_id="load"
    )
    result = LoadResult()
    gate = asyncio.Semaphore(concurrency)
    started = time.perf_counter()

    async def one(index: int) -> None:
        rng = random.Random(seed * 1_000_003 + index)
        sign = sign_command(index, tag, rng)
        commands = life(sign, events_per_agreement, rng)
        if close_every and index % close_every == close_every - 1 and commands:
            commands[-1] = CloseTerm(closed_on=sign.term.end, outcome=Outcome.COMPLETED, summary="Tổng kết")
        async with gate:
            signed = await registry.bus.run(sign, context)
            agreement_id = signed.agreement_id
            result.agreements.append(agreement_id)
            last = signed.position
            if chunk <= 1:
                for command in commands:
                    last = (await registry.bus.run(command, context, agreement_id)).position
            else:
                loaded = await registry.agreements.get(agreement_id)
                state, prevhash = loaded.state, loaded.last_hash
                assert state is not None
                for start in range(0, len(commands), chunk):
                    version = state.version
                    events = []
                    for command in commands[start : start + chunk]:
                        [event] = decide(command, state, StoreFacts(agreement_id))
                        state = evolve(state, event)
                        events.append(event)
                    envelopes = seal_events(
                        events,
                        stream_id=agreement_id,
                        version=version,
                        prevhash=prevhash,
                        context=context,
                        recorded_at=clock,
                        new_id=lambda: str(uuid.uuid4()),
                    )
                    prevhash = envelopes[-1].hash
                    last = max(await store.append(agreement_id, version, envelopes))
        result.commands += 1 + len(commands)
        result.events += 1 + len(commands)
        result.last_position = max(result.last_position, last)
        if on_progress is not None:
            on_progress(result.events)

    await asyncio.gather(*(one(i) for i in range(agreements)))
    result.seconds = time.perf_counter() - started
    return result


async def keep_commanding(
    pool: asyncpg.Pool, agreement_ids: list[str], stop: asyncio.Event, *, concurrency: int = 4, seed: int = 11
) -> LoadResult:
    """Until `stop` is set: progress reports on the given agreements, and new signings."""
    registry = bootstrap.on_postgres(pool)
    context = CommandContext(
        Caller.in_process("load-generator"), correlation_id="load-live", causation_id="load"
    )
    result = LoadResult()
    started = time.perf_counter()
    counter = iter(range(10**9))

    async def worker(number: int) -> None:
        rng = random.Random(seed * 97 + number)
        while not stop.is_set():
            index = next(counter)
            if index % 5 == 0:
                signed = await registry.bus.run(sign_command(index, f"LIVE-{seed}", rng), context)
                position, agreement_id = signed.position, signed.agreement_id
            else:
                agreement_id = rng.choice(agreement_ids)
                loaded = await registry.agreements.get(agreement_id)
                state = loaded.state
                if state is None or state.status == "closed":
                    continue
                item = state.obligations.get("tuyen-truyen")
                if item is None or item.status != "active":
                    continue
                ob = item.obligation
                party = rng.choice([ob.lead_party_id, *ob.supporting_party_ids])
                done = await registry.bus.run(
                    _report("tuyen-truyen", party, rng.choice(QUARTERS), rng), context, agreement_id
                )
                position = done.position
            result.agreements.append(agreement_id)
            result.events += 1
            result.commands += 1
            result.last_position = max(result.last_position, position)

    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    result.seconds = time.perf_counter() - started
    return result
