"""One in-process lock per stream: commands on one stream queue up in this process instead of
racing each other. The database still decides races between processes (optimistic concurrency)."""

from __future__ import annotations

import asyncio
import weakref


class StreamLocks:
    def __init__(self) -> None:
        # Weak values: a stream nobody is acting on holds no lock.
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def of(self, stream_id: str) -> asyncio.Lock:
        lock = self._locks.get(stream_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[stream_id] = lock
        return lock
