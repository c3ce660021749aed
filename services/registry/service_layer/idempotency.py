"""The Idempotency-Key port (docs/CONTRACT.md): the same key and request give the first response again.

- same key, same request    -> the stored response, no new event;
- same key, other request   -> KeyReused (422);
- same key while running    -> KeyInFlight (409).
Keys are scoped per client: one client never sees another's stored response. A successful
command's response is recorded by the event store in the append's own transaction
(`Completion`), so a response is stored exactly when the events are. A claim left in flight
by a crashed request is taken over after a while; the crashed request's append, if it ever
comes, then fails with ClaimLost and stores nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class Claim:
    """This request holds the key (until it completes, is refused, or is released)."""

    client_id: str
    key: str
    token: str


@dataclass(frozen=True)
class StoredResponse:
    """The first request's answer, given again."""

    status_code: int
    body: Mapping[str, Any]


@dataclass(frozen=True)
class Completion:
    """A successful command's response, recorded with its events.

    The body depends on the store position the events get, so the store calls `body` with the
    position of the last appended event, inside its transaction.
    """

    claim: Claim
    status_code: int
    body: Callable[[int], Mapping[str, Any]]


class KeyInFlight(Exception):
    """The first request with this key has not finished."""


class KeyReused(Exception):
    """The key was first used for a different request."""


class ClaimLost(Exception):
    """The in-flight claim was taken over by a later attempt; this one must not commit."""


class IdempotencyRecorder(Protocol):
    async def claim(self, client_id: str, key: str, fingerprint: str) -> Claim | StoredResponse:
        """Claims the key for this request, or returns the response of the first one.

        Raises KeyReused (other fingerprint) or KeyInFlight (first request still running).
        """
        ...

    async def record_refusal(self, claim: Claim, status_code: int, body: Mapping[str, Any]) -> None:
        """Remembers a refusal: the same request gets the same answer, and writes nothing."""
        ...

    async def release(self, claim: Claim) -> None:
        """Forgets the claim (nothing was decided): the client may retry with the key."""
        ...
