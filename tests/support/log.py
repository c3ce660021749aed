"""The transparency log in tests: events written over HTTP, and the tree integrated in process
(as the relay's integrator does, under its lock)."""

from __future__ import annotations

import asyncpg

from services.registry.adapters.tree_integrator import TREE_LOCK, integrate_batch
from tests.support.builders import report_body, sign_body
from tests.support.stack import Stack


async def write(stack: Stack, agreements: int, reports: int) -> list[str]:
    """Signs agreements, each with `reports` progress reports: agreements × (1 + reports) events."""
    ids = []
    for _ in range(agreements):
        signed = await stack.sign(sign_body())
        ids.append(signed["agreement_id"])
        for year in range(reports):
            response = await stack.registry.post(
                f"/v1/agreements/{signed['agreement_id']}/progress-reports",
                json=report_body(period=str(2023 + year)),
            )
            assert response.status_code == 201, response.text
    return ids


async def integrate(pool: asyncpg.Pool, batch: int = 7) -> int:
    """Takes every queued event into the tree, `batch` at a time; how many."""
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT pg_try_advisory_lock($1)", TREE_LOCK)
        try:
            total = 0
            while taken := await integrate_batch(conn, batch):
                total += taken
            return total
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", TREE_LOCK)
