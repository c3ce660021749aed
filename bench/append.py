"""Figure 5, our side: the registry's append path in-process, without HTTP.

command bus over `PostgresEventStore`, exactly as the registry builds them: each
command loads the agreement's events, folds them, decides, seals the envelopes (hash
chain) and appends events + outbox rows in one transaction. The load shape is the
peer's: `clients` concurrent clients, each walking agreement lives of a signing and nine
progress reports (bench/workload.py APPEND_LIFE), `commands` commands in all.
"""

from __future__ import annotations

import asyncio
import cProfile
import time
import uuid
from typing import Any

from coordreg_contracts.commands import ReportProgress, SignAgreement

from bench.profiling import from_profile
from bench.stats import summary_ms
from bench.workload import APPEND_LIFE, Lives
from services.common.db import create_pool
from services.registry import bootstrap
from services.registry.service_layer.binding import Caller
from services.registry.service_layer.bus import CommandContext


async def ours(
    dsn: str, commands: int, clients: int, pool_size: int, tag: str, *, profile: bool = False
) -> dict[str, Any]:
    """Runs the commands; with `profile`, under cProfile (slower: for the top functions only)."""
    pool = await create_pool(dsn, min_size=pool_size, max_size=pool_size)
    registry = bootstrap.on_postgres(pool)
    per_client = commands // clients
    latencies: list[float] = []
    errors: list[str] = []

    async def client(number: int) -> None:
        lives = Lives(number, clients, tag, life=list(APPEND_LIFE), active=1)
        for _ in range(per_client):
            agreement = lives.next()
            body = lives.body(agreement)
            context = CommandContext(
                caller=Caller.in_process(f"bench-append-{number}"),
                correlation_id=str(uuid.uuid4()),
                causation_id=str(uuid.uuid4()),
            )
            began = time.perf_counter()
            try:
                if agreement.next_kind == "sign":
                    result = await registry.bus.run(SignAgreement.model_validate(body), context)
                else:
                    result = await registry.bus.run(
                        ReportProgress.model_validate(body), context, agreement.agreement_id
                    )
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                agreement.step = len(agreement.life)
                continue
            latencies.append(time.perf_counter() - began)
            lives.advance(agreement, result.agreement_id)

    profiler = cProfile.Profile(time.process_time) if profile else None
    try:
        began = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        await asyncio.gather(*(client(i) for i in range(clients)))
        if profiler is not None:
            profiler.disable()
        seconds = time.perf_counter() - began
    finally:
        await pool.close()
    latency = summary_ms(latencies)
    return {
        "commands": len(latencies),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "seconds": round(seconds, 3),
        "per_second": round(len(latencies) / seconds, 1) if seconds else 0.0,
        "latency_ms": {"p50": latency["p50"], "p99": latency["p99"]},
        "clients": clients,
        "pool_size": pool_size,
        **({"profile": from_profile(profiler)} if profiler is not None else {}),
    }
