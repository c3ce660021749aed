"""Refusals as typed exceptions: one class per problem `type` (docs/CONTRACT.md B3).

Which refusals are worth retrying is decided by the problem's `type` alone, never by its text:
`unavailable`, `not-yet-consistent`, `idempotency-key-in-flight`, `busy` and `rate-limited` are
retryable (each comes with `Retry-After`); every other kind is final.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

PROBLEM_BASE = "https://coordination-registry.gov.vn/problems/"


class ClientError(Exception):
    """Base of everything the client raises."""


class RetriesExhausted(ClientError):
    """A retryable failure went on past the policy's attempts or total time; `last` is its last one."""

    def __init__(self, message: str, last: BaseException, attempts: int) -> None:
        super().__init__(message)
        self.last = last
        self.attempts = attempts


class Problem(ClientError):
    """An RFC 9457 problem answered by either service."""

    kind: ClassVar[str | None] = None
    retryable: ClassVar[bool] = False

    def __init__(
        self, status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
    ) -> None:
        self.status = status
        self.body: dict[str, Any] = dict(body)
        self.type: str = str(body.get("type", "about:blank"))
        self.title: str = str(body.get("title", ""))
        self.detail: str | None = body.get("detail")
        self.retry_after: str | None = (headers or {}).get("retry-after")
        super().__init__(f"{status} {self.type}: {self.detail or self.title}")

    @property
    def errors(self) -> list[dict[str, Any]]:
        """The `errors` member (`loc`, `msg`) of a validation or rule problem, else []."""
        errors = self.body.get("errors")
        return list(errors) if isinstance(errors, list) else []


class BadRequest(Problem):
    kind = "bad-request"


class Unauthenticated(Problem):
    kind = "unauthenticated"


class Forbidden(Problem):
    """The family of 403s: `insufficient-scope`, `party-not-held`."""


class InsufficientScope(Forbidden):
    kind = "insufficient-scope"


class PartyNotHeld(Forbidden):
    kind = "party-not-held"


class NotFound(Problem):
    kind = "not-found"


class MethodNotAllowed(Problem):
    kind = "method-not-allowed"


class Conflict(Problem):
    """A final 409: the agreement is closed, or a document number is already taken
    (`existing_agreement_id`)."""

    kind = "conflict"

    @property
    def existing_agreement_id(self) -> str | None:
        value = self.body.get("existing_agreement_id")
        return value if isinstance(value, str) else None


class Busy(Problem):
    """409: the agreement (or the party's entry) kept changing through every retry of the
    registry; transient: the same command, with its key, may succeed later."""

    kind = "busy"
    retryable = True


class KeyInFlight(Problem):
    """409: the first request with this Idempotency-Key is still running; retry with the same key."""

    kind = "idempotency-key-in-flight"
    retryable = True


class PreconditionFailed(Problem):
    """412: `If-Match` names another version: read the agreement again and decide again."""

    kind = "precondition-failed"


class BodyTooLarge(Problem):
    kind = "request-body-too-large"


class Invalid(Problem):
    """The family of 422s."""


class ValidationFailed(Invalid):
    kind = "validation"


class RuleViolated(Invalid):
    kind = "rule-violated"


class KeyReused(Invalid):
    kind = "idempotency-key-reused"


class RateLimited(Problem):
    kind = "rate-limited"
    retryable = True


class Internal(Problem):
    kind = "internal"


class Unavailable(Problem):
    """503: the database is unreachable or restarting."""

    kind = "unavailable"
    retryable = True


class NotYetConsistent(Problem):
    """503: the projections have not applied `min_position` yet."""

    kind = "not-yet-consistent"
    retryable = True


class GatewayUnavailable(Problem):
    """A 502, 503 or 504 that is not a problem of the services: a proxy in front (HAProxy) found no
    server. Retryable: the request may not have reached a registry, and a command carries its key."""

    retryable = True


KINDS: dict[str, type[Problem]] = {
    PROBLEM_BASE + cls.kind: cls
    for cls in (
        BadRequest,
        Unauthenticated,
        InsufficientScope,
        PartyNotHeld,
        NotFound,
        MethodNotAllowed,
        Conflict,
        Busy,
        KeyInFlight,
        PreconditionFailed,
        BodyTooLarge,
        ValidationFailed,
        RuleViolated,
        KeyReused,
        RateLimited,
        Internal,
        Unavailable,
        NotYetConsistent,
    )
    if cls.kind is not None
}
GATEWAY_STATUSES = frozenset({502, 503, 504})


def problem_of(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Problem:
    """The typed exception for an error answer: by its `type`; an answer that is no problem of the
    services is `GatewayUnavailable` for 502/503/504 and a plain `Problem` otherwise."""
    if isinstance(body, Mapping) and isinstance(body.get("type"), str):
        return KINDS.get(body["type"], Problem)(status, body, headers)
    fallback = {"type": "about:blank", "title": f"HTTP {status}", "status": status}
    cls = GatewayUnavailable if status in GATEWAY_STATUSES else Problem
    return cls(status, fallback, headers)
