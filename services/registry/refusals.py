"""What a refused command answers over HTTP (RFC 9457), as data: its status and problem body.

The HTTP entry point answers a refusal with it (services/registry/entrypoints/errors.py), and
the command bus remembers it for the command's Idempotency-Key, wired in by the bootstrap, so
that the service layer knows no HTTP and the bootstrap imports no entry point.
"""

from __future__ import annotations

from typing import Any

from services.common.problems import problem_body
from services.registry.domain.errors import (
    Busy,
    Conflict,
    DomainError,
    NotFound,
    PreconditionFailed,
    Rejected,
)

BUSY = "busy"
# What a client waits before it retries a refusal that is transient.
RETRY_AFTER = {BUSY: "1"}


def retry_after(body: dict[str, Any]) -> str | None:
    """The `Retry-After` an answer with this problem body carries, if its kind is transient."""
    return RETRY_AFTER.get(str(body.get("type", "")).rsplit("/", 1)[-1])


def refusal_status_and_body(exc: DomainError) -> tuple[int, dict[str, Any]]:
    """The answer to a refusal: what it answers at once, and again for its Idempotency-Key."""
    if isinstance(exc, Rejected):
        errors = [{"loc": ["body", *v.loc], "msg": v.msg} for v in exc.violations]
        return 422, problem_body(422, exc.detail, kind="rule-violated", errors=errors)
    if isinstance(exc, Busy):
        # Transient (docs/CONTRACT.md B3): a type of its own, so that a client retries it.
        return 409, problem_body(409, exc.detail, kind=BUSY)
    status = {NotFound: 404, Conflict: 409, PreconditionFailed: 412}.get(type(exc), 409)
    extensions = None
    if isinstance(exc, Conflict) and exc.existing_agreement_id:
        # RFC 9457 extension member: lets a caller retrying a signing find its agreement.
        extensions = {"existing_agreement_id": exc.existing_agreement_id}
    return status, problem_body(status, exc.detail, extensions=extensions)
