"""What the platform alerts on about the outbox: how many rows wait, and for how long.

Every relay, leader or standby, counts them every few seconds on its own pool connection
(one query, never on the command path): a standby still reports a backlog that grows
because no relay leads. `relay_is_leader` tells the leader's series apart.
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import structlog
from prometheus_client import Gauge

log = structlog.get_logger(__name__)

BACKLOG = Gauge("relay_outbox_backlog", "Outbox rows not yet published to Kafka (counted every few seconds)")
OLDEST_AGE = Gauge(
    "relay_outbox_oldest_age_seconds", "Age of the oldest outbox row not yet published to Kafka; 0 when none"
)

# One scan of a table the relay keeps near empty; the database's clock on both sides.
_OUTBOX = """SELECT count(*),
                    coalesce(extract(epoch FROM clock_timestamp() - min(enqueued_at)), 0)::float8
             FROM registry.outbox"""


async def check_outbox(pool: asyncpg.Pool) -> tuple[int, float]:
    """Sets the two gauges from the outbox as it is now, and returns (rows, oldest age in seconds)."""
    row = await pool.fetchrow(_OUTBOX)
    assert row is not None
    backlog, age = int(row[0]), max(0.0, float(row[1]))
    BACKLOG.set(backlog)
    OLDEST_AGE.set(age)
    return backlog, age


async def watch_outbox(pool: asyncpg.Pool, stop: asyncio.Event, every_seconds: float) -> None:
    """check_outbox every `every_seconds` until `stop`; a failed check keeps the last values."""
    while not stop.is_set():
        try:
            await check_outbox(pool)
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("could not count the outbox", error=repr(exc))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every_seconds)
