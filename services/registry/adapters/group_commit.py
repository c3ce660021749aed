"""Group commit: concurrent commands' appends share one transaction, and so one WAL flush.

Each append is one call of `registry.append_command`
(services/registry/migrations/definitions/append_command.sql), which does the whole
command's write in its own subtransaction and answers it alone: its positions, or the race it
lost. The writer sends every call waiting at that moment as one statement in one transaction
(at most `max_batch`), and while that batch is in flight the next one gathers: under load the
batches grow by themselves, and a command alone is sent at once (no timer to wait out).
Nothing is acknowledged before its transaction commits: a caller's future resolves only with
the statement's answer, after the commit; if the transaction fails, every command in it fails
and none of their writes exists.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import asyncpg
import structlog
from prometheus_client import Histogram

log = structlog.get_logger(__name__)

# Each command's call is a subtransaction; PostgreSQL caches 64 subtransaction ids per backend
# before other sessions' snapshots must look them up on disk, so a batch stays below that.
MAX_BATCH = 48

BATCH_SIZE = Histogram(
    "registry_group_commit_commands",
    "Commands committed together in one transaction by the group-commit writer",
    buckets=(1, 2, 4, 8, 16, 32, 48),
)

_BATCH = """SELECT registry.append_command(c::jsonb)::text
            FROM unnest($1::text[]) WITH ORDINALITY AS t(c, n) ORDER BY n"""


class GroupCommitWriter:
    def __init__(self, pool: asyncpg.Pool, max_batch: int = MAX_BATCH) -> None:
        self.pool = pool
        self.max_batch = max_batch
        self._waiting: list[tuple[str, asyncio.Future[dict[str, Any]]]] = []
        self._flusher: asyncio.Task[None] | None = None
        # Transactions sent, for the tests and the bench (the histogram is per process).
        self.transactions = 0

    async def submit(self, command: str) -> dict[str, Any]:
        """The outcome of one `registry.append_command` call, once its transaction committed."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting.append((command, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        # The write goes on if this caller is cancelled: its outcome is the batch's.
        return await asyncio.shield(future)

    async def _flush(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[: self.max_batch], self._waiting[self.max_batch :]
            self.transactions += 1
            BATCH_SIZE.observe(len(batch))
            try:
                async with self.pool.acquire() as conn:
                    rows = await conn.fetch(_BATCH, [command for command, _ in batch])
            except BaseException as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            for (_, future), row in zip(batch, rows, strict=True):
                if not future.done():
                    future.set_result(json.loads(row[0]))
