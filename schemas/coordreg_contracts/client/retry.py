"""The retry policy: bounded attempts and a cap on the total time, honouring `Retry-After`."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


@dataclass(frozen=True)
class RetryPolicy:
    """How long the client keeps trying one logical command or query.

    - `max_attempts`: requests in all, the first included.
    - `total_seconds`: no retry starts after this long since the first request; a wait that would
      end past it is not taken. The default outlasts the 15 s after which the registry takes over
      an Idempotency-Key whose request died (docs/CONTRACT.md B1).
    - Without `Retry-After` (a lost connection, a timeout) the wait grows from `backoff_seconds`,
      doubling, up to `max_delay_seconds`, with jitter. `Retry-After` is honoured as given, up to
      `max_delay_seconds`.
    """

    max_attempts: int = 30
    total_seconds: float = 60.0
    backoff_seconds: float = 0.2
    max_delay_seconds: float = 10.0

    def delay(self, attempt: int, retry_after: str | None, now: datetime | None = None) -> float:
        """The wait before attempt `attempt + 1` (attempts count from 1)."""
        given = parse_retry_after(retry_after, now)
        if given is not None:
            return min(given, self.max_delay_seconds)
        backoff = min(self.backoff_seconds * 2.0 ** (attempt - 1), self.max_delay_seconds)
        return backoff * (0.5 + random.random() / 2)  # jitter, not a secret


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """`Retry-After` (RFC 9110 10.2.3): whole seconds, or an HTTP-date; None if absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(int(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
