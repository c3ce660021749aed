"""Leading by a PostgreSQL advisory lock: the relay, the tree integrator and the witness feeder
each run in every relay process, and each leads alone by a lock of its own, held by the session
of the connection it works on (a process that dies loses it with its connection)."""

from __future__ import annotations

import asyncio
import contextlib

from services.common.db import Connection


async def take_lead(conn: Connection, lock: int, stop: asyncio.Event, retry_seconds: float = 1.0) -> bool:
    """Waits until this connection's session holds `lock` (True), trying every `retry_seconds`,
    or until `stop` is set (False)."""
    while not stop.is_set():
        if await conn.fetchval("SELECT pg_try_advisory_lock($1)", lock):
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), retry_seconds)
    return False
