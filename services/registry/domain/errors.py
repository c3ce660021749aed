"""Why a command is refused. Pure values; the HTTP adapter maps them to RFC 9457 problems."""

from __future__ import annotations

from dataclasses import dataclass

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Violation:
    loc: Loc
    msg: str


class DomainError(Exception):
    """A command that must not produce events."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Rejected(DomainError):
    """The command breaks a rule of the contract (HTTP 422), with the field path of each breach."""

    def __init__(self, violations: list[Violation]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, v.loc))}: {v.msg}" for v in violations))
        self.violations = tuple(violations)


class Conflict(DomainError):
    """The command contradicts the agreement's current state (HTTP 409)."""

    def __init__(self, detail: str, existing_agreement_id: str | None = None) -> None:
        super().__init__(detail)
        self.existing_agreement_id = existing_agreement_id


class Busy(Conflict):
    """The stream kept changing through every retry of the command (HTTP 409, problem `busy`):
    unlike the other conflicts it is transient, and the same request may succeed later."""


class NotFound(DomainError):
    """No agreement with that id (HTTP 404)."""


class PreconditionFailed(DomainError):
    """`If-Match` named a version that is no longer current (HTTP 412)."""
