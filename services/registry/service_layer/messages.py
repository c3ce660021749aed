"""What goes into the command bus beside a command, and what comes out of it.

A command is one of the contract's body models (`coordreg_contracts.commands`, `.parties`); the
bus receives it with its `CommandContext` (who asks, the request's ids, If-Match, the
Idempotency-Key) and the id of the stream it acts on (an agreement's id, or a party's directory
stream `party/<id>`). It answers with the command's result, or with the stored answer of the
first request that had the same Idempotency-Key (`Replayed`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from services.registry.domain.errors import DomainError
from services.registry.service_layer.binding import Caller
from services.registry.service_layer.idempotency import StoredResponse


@dataclass(frozen=True)
class IdempotentRequest:
    """The request's Idempotency-Key, the fingerprint of the whole request, and the status its
    success answers with (recorded, so that a replay gives the same status)."""

    key: str
    fingerprint: str
    status_code: int


@dataclass(frozen=True)
class CommandContext:
    caller: Caller
    correlation_id: str
    causation_id: str
    expected_version: int | None = None  # from If-Match
    idempotency: IdempotentRequest | None = None


@dataclass(frozen=True)
class CommandResult:
    """An agreement command's result: the agreement's version and the position of its last event."""

    agreement_id: str
    version: int
    position: int
    status: str

    def body(self) -> dict[str, Any]:
        return {
            "agreement_id": self.agreement_id,
            "version": self.version,
            "position": self.position,
            "status": self.status,
        }

    def span_attributes(self) -> dict[str, str | int]:
        return {"coordreg.agreement_id": self.agreement_id, "coordreg.position": self.position}


@dataclass(frozen=True)
class PartyResult:
    """A directory command's result: the party's stream version and the position of its event."""

    party_id: str
    version: int
    position: int
    status: str  # active | ceased

    def body(self) -> dict[str, Any]:
        return {
            "party_id": self.party_id,
            "version": self.version,
            "position": self.position,
            "status": self.status,
        }

    def span_attributes(self) -> dict[str, str | int]:
        return {"coordreg.party_id": self.party_id, "coordreg.position": self.position}


@dataclass(frozen=True)
class Replayed:
    """The stored response of the first request with this Idempotency-Key."""

    response: StoredResponse


Result = CommandResult | PartyResult
Reply = Result | Replayed
# How a refusal is answered (status and body), so that it can be remembered for its key.
DescribeRefusal = Callable[[DomainError], tuple[int, Mapping[str, Any]]]


class UnrecordedRefusal(Exception):
    """A refusal that is not the command's own answer, so it is not recorded for the
    Idempotency-Key: decided before the decision proper (who is asking, does the agreement
    exist), or transient (every retry lost its race). The key is released, and the same request
    is decided again next time. The bus raises `reason` to its caller."""

    def __init__(self, reason: Exception) -> None:
        super().__init__(reason)
        self.reason = reason
