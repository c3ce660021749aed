"""The one retry policy on lost races (docs/adr/0007-one-command-pipeline.md).

An append that loses a race to another writer (`ConcurrencyError`: the stream moved on, or a
directory entry the decision read changed before the commit) is decided again, from the load, on
the newer state. The command bus runs every handler under it, and the succession process manager
runs each transfer under it. A jittered, capped exponential backoff spreads instances that keep
colliding on one stream.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import structlog

from services.registry.service_layer.event_store import ConcurrencyError

log = structlog.get_logger(__name__)
_R = TypeVar("_R")


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 5  # tries after the first
    base_seconds: float = 0.005
    max_seconds: float = 0.2

    def backoff(self, attempt: int) -> float:
        return random.uniform(0, min(self.max_seconds, self.base_seconds * 2**attempt))

    async def run(
        self, step: Callable[[], Awaitable[_R]], *, exhausted: Callable[[], Exception], stream_id: str
    ) -> _R:
        """`step` again while its append loses a race; `exhausted()` is raised once every try lost."""
        for attempt in range(self.retries + 1):
            try:
                return await step()
            except ConcurrencyError:
                log.info("lost a race, deciding again", stream_id=stream_id, attempt=attempt)
                await asyncio.sleep(self.backoff(attempt))
        raise exhausted()
