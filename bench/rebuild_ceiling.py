"""The ceiling of a rebuild from the store: the same rows read and written again, nothing decoded.

`COPY (SELECT ... FROM registry.events) TO STDOUT` on one connection is piped, chunk by chunk and
in PostgreSQL's binary format, into `COPY ... FROM STDIN` of a scratch table on another: what
any rebuild must at least do (read every event, write a row per event), without parsing an
envelope, folding a state or building an index. The replay figure divides the audit tool's
rebuild rate by this one, measured on the same store in the same run.

The scratch table is an ordinary (logged) table, as the shadow's are, in a schema of its own
that is dropped afterwards; the registry's schema is only read.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import asyncpg

SCRATCH_SCHEMA = "bench_rebuild_ceiling"
# The columns a rebuild reads, in its order.
QUERY = "SELECT position, agreement_id, sequence, envelope FROM registry.events ORDER BY position"


async def rebuild_ceiling(database_url: str) -> dict[str, float]:
    """Events read and copied, the seconds it took and the events per second."""
    reader = await asyncpg.connect(database_url)
    writer = await asyncpg.connect(database_url)
    try:
        await writer.execute(f'DROP SCHEMA IF EXISTS "{SCRATCH_SCHEMA}" CASCADE')
        await writer.execute(f'CREATE SCHEMA "{SCRATCH_SCHEMA}"')
        await writer.execute(
            f"""CREATE TABLE "{SCRATCH_SCHEMA}".events (
                    position bigint NOT NULL, agreement_id text NOT NULL,
                    sequence integer NOT NULL, envelope text NOT NULL)"""
        )
        chunks: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=64)

        async def produce(chunk: bytes) -> None:
            await chunks.put(chunk)

        async def source() -> AsyncIterator[bytes]:
            while (chunk := await chunks.get()) is not None:
                yield chunk

        async def read() -> None:
            try:
                async with reader.transaction(isolation="repeatable_read", readonly=True):
                    await reader.copy_from_query(QUERY, output=produce, format="binary")
            finally:
                await chunks.put(None)

        started = time.perf_counter()
        _, copied = await asyncio.gather(
            read(),
            writer.copy_to_table("events", source=source(), schema_name=SCRATCH_SCHEMA, format="binary"),
        )
        seconds = time.perf_counter() - started
        events = int(copied.split()[-1])
    finally:
        try:
            await writer.execute(f'DROP SCHEMA IF EXISTS "{SCRATCH_SCHEMA}" CASCADE')
        finally:
            await reader.close()
            await writer.close()
    return {
        "events": float(events),
        "seconds": round(seconds, 3),
        "events_per_second": round(events / seconds, 1) if seconds > 0 else 0.0,
    }


def main() -> None:
    """`python -m bench.rebuild_ceiling` against DATABASE_URL: the figures as JSON."""
    import json
    import os

    print(json.dumps(asyncio.run(rebuild_ceiling(os.environ["DATABASE_URL"]))))


if __name__ == "__main__":
    main()
