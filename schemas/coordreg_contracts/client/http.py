"""The client of both services, following every rule of docs/CONTRACT.md for its callers.

- One `Idempotency-Key` per logical command (a uuid4, or the caller's), sent again unchanged on
  every retry of that command: the registry gives it exactly one effect (B1).
- Retries bounded by a `RetryPolicy` (attempts and total time) on what the contract says is
  worth retrying, told by the problem `type` alone: `unavailable` and `not-yet-consistent` (503),
  `idempotency-key-in-flight` (409), `rate-limited` (429), honouring `Retry-After`; and on a lost
  connection or a timeout, and a proxy's 502/503/504.
- `If-Match` on an amendment from the last `ETag` (or version) seen for that agreement, or the
  one the caller passes (B2).
- Read-your-writes: a query of the projections passes `min_position`, the position of the last
  command this client's session made (decision 9).
- Refusals raised as the typed exceptions of `coordreg_contracts.client.problems`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from coordreg_contracts.client import answers
from coordreg_contracts.client.problems import Problem, RetriesExhausted, problem_of
from coordreg_contracts.client.retry import RetryPolicy
from coordreg_contracts.commands import AmendAgreement, CloseTerm, ReportProgress, SignAgreement
from coordreg_contracts.parties import RecordSuccession, RegisterParty, RenameParty

A = TypeVar("A", bound=answers.Answer)
Body = BaseModel | Mapping[str, Any]
Token = str | Callable[[], str] | None


@dataclass
class Session:
    """What one client remembers between calls: the last ETag per agreement and the position of
    its last command. Shared by a `RegistryClient` and a `ProjectionsClient` (see `Coordreg`)."""

    etags: dict[str, str] = field(default_factory=dict)
    last_position: int | None = None
    # Every attempt made, for observation: (method, path, idempotency key, outcome).
    attempts: list[tuple[str, str, str | None, str]] = field(default_factory=list)


def as_json(body: Body) -> Any:
    """A command as its JSON: a model with only the fields set (a `revise_obligation` names only
    what it changes), a mapping as it is."""
    if isinstance(body, BaseModel):
        return body.model_dump(mode="json", exclude_unset=True)
    return dict(body)


class _Base:
    def __init__(
        self,
        base_url: str,
        token: Token = None,
        *,
        session: Session | None = None,
        policy: RetryPolicy | None = None,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.session = session or Session()
        self.policy = policy or RetryPolicy()
        self._token = token
        self._sleep = sleep
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout, transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self: _B) -> _B:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _headers(self) -> dict[str, str]:
        token = self._token() if callable(self._token) else self._token
        return {"Authorization": f"Bearer {token}"} if token else {}

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        key: str | None = None,
    ) -> httpx.Response:
        """One logical request: retried under the policy, with the same key and headers every time."""
        sent = {**(headers or {})}
        if key is not None:
            sent["Idempotency-Key"] = key
        query = {k: v for k, v in (params or {}).items() if v is not None}
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            failure: BaseException
            retry_after: str | None = None
            try:
                response = await self._http.request(
                    method, path, json=json, params=query, headers={**self._headers(), **sent}
                )
            except httpx.TransportError as exc:  # lost connection, timeout: the outcome is unknown
                failure = exc
                self.session.attempts.append((method, path, key, type(exc).__name__))
            else:
                self.session.attempts.append((method, path, key, str(response.status_code)))
                if response.status_code < 400:
                    return response
                failure = _problem(response)
                if not (isinstance(failure, Problem) and failure.retryable):
                    raise failure
                retry_after = failure.retry_after
            delay = self.policy.delay(attempt, retry_after)
            spent = time.monotonic() - started
            if attempt >= self.policy.max_attempts or spent + delay > self.policy.total_seconds:
                raise RetriesExhausted(
                    f"{method} {path}: gave up after {attempt} attempts in {spent:.1f} s: {failure}",
                    failure,
                    attempt,
                ) from failure
            await self._sleep(delay)


_B = TypeVar("_B", bound=_Base)


def _problem(response: httpx.Response) -> Problem:
    try:
        body = response.json()
    except ValueError:
        body = None
    return problem_of(response.status_code, body, response.headers)


def _etag_version(value: str | int) -> str:
    """An If-Match value: `3`, `"3"` and `W/"3"` all name version 3; sent as `"3"`."""
    text = str(value).strip().removeprefix("W/").strip('"')
    return f'"{text}"'


class RegistryClient(_Base):
    """The registry (command side, strongly consistent reads). Every command method takes an
    optional `idempotency_key`: pass your own to retry a command across restarts of your process;
    by default each call makes one (a uuid4) and keeps it through its retries."""

    def _remember(self, agreement_id: str, response: httpx.Response, version: int | None) -> None:
        etag = response.headers.get("etag")
        if etag is not None:
            self.session.etags[agreement_id] = _etag_version(etag)
        elif version is not None:
            self.session.etags[agreement_id] = _etag_version(version)

    async def _agreement_command(
        self, path: str, agreement_id: str | None, body: Body, key: str | None, headers: Mapping[str, str]
    ) -> answers.AgreementCommandResult:
        response = await self._request(
            "POST", path, json=as_json(body), headers=headers, key=key or _new_key()
        )
        result = answers.AgreementCommandResult.model_validate_json(response.content)
        self._remember(agreement_id or result.agreement_id, response, result.version)
        self.session.last_position = result.position
        return result

    async def _party_command(self, path: str, body: Body, key: str | None) -> answers.PartyCommandResult:
        response = await self._request("POST", path, json=as_json(body), key=key or _new_key())
        result = answers.PartyCommandResult.model_validate_json(response.content)
        self.session.last_position = result.position
        return result

    async def sign(
        self, command: SignAgreement | Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> answers.AgreementCommandResult:
        """`signAgreement`: `POST /v1/agreements`."""
        return await self._agreement_command("/v1/agreements", None, command, idempotency_key, {})

    async def amend(
        self,
        agreement_id: str,
        command: AmendAgreement | Mapping[str, Any],
        *,
        if_match: str | int | None = None,
        use_last_etag: bool = True,
        idempotency_key: str | None = None,
    ) -> answers.AgreementCommandResult:
        """`amendAgreement`. `If-Match` is `if_match` when given, else the last ETag this session saw
        for the agreement (unless `use_last_etag=False`); a stale one raises `PreconditionFailed`."""
        headers = {}
        match = (
            if_match
            if if_match is not None
            else (self.session.etags.get(agreement_id) if use_last_etag else None)
        )
        if match is not None:
            headers["If-Match"] = _etag_version(match)
        path = f"/v1/agreements/{agreement_id}/amendments"
        return await self._agreement_command(path, agreement_id, command, idempotency_key, headers)

    async def report_progress(
        self,
        agreement_id: str,
        command: ReportProgress | Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
    ) -> answers.AgreementCommandResult:
        """`reportProgress`."""
        path = f"/v1/agreements/{agreement_id}/progress-reports"
        return await self._agreement_command(path, agreement_id, command, idempotency_key, {})

    async def close(
        self, agreement_id: str, command: CloseTerm | Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> answers.AgreementCommandResult:
        """`closeTerm`."""
        path = f"/v1/agreements/{agreement_id}/close"
        return await self._agreement_command(path, agreement_id, command, idempotency_key, {})

    async def register_party(
        self, command: RegisterParty | Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> answers.PartyCommandResult:
        """`registerParty`."""
        return await self._party_command("/v1/parties", command, idempotency_key)

    async def rename_party(
        self, party_id: str, command: RenameParty | Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> answers.PartyCommandResult:
        """`renameParty`."""
        return await self._party_command(f"/v1/parties/{party_id}/rename", command, idempotency_key)

    async def record_succession(
        self,
        party_id: str,
        command: RecordSuccession | Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
    ) -> answers.PartyCommandResult:
        """`recordSuccession`."""
        return await self._party_command(f"/v1/parties/{party_id}/succession", command, idempotency_key)

    async def get_agreement(self, agreement_id: str) -> answers.Agreement:
        """`getAgreement` (strongly consistent); remembers its ETag for the next amendment."""
        response = await self._request("GET", f"/v1/agreements/{agreement_id}")
        agreement = answers.Agreement.model_validate_json(response.content)
        self._remember(agreement_id, response, agreement.version)
        return agreement

    async def list_agreement_events(
        self, agreement_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> answers.EventPage:
        """`listAgreementEvents`: one page; follow `next_cursor` for the next."""
        params = {"limit": limit, "cursor": cursor}
        response = await self._request("GET", f"/v1/agreements/{agreement_id}/events", params=params)
        return answers.EventPage.model_validate_json(response.content)

    async def get_party(self, party_id: str) -> answers.DirectoryEntry:
        """`getParty` of the registry (strongly consistent)."""
        response = await self._request("GET", f"/v1/parties/{party_id}")
        return answers.DirectoryEntry.model_validate_json(response.content)

    async def list_party_events(
        self, party_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> answers.EventPage:
        """`listPartyEvents`."""
        params = {"limit": limit, "cursor": cursor}
        response = await self._request("GET", f"/v1/parties/{party_id}/events", params=params)
        return answers.EventPage.model_validate_json(response.content)


class ProjectionsClient(_Base):
    """The projections (query side, eventually consistent). Every query passes `min_position`:
    the one given, else the position of the session's last command (read-your-writes), else none;
    `consistent=False` asks for what the read models hold now."""

    async def _query(
        self,
        model: type[A],
        path: str,
        params: Mapping[str, Any],
        min_position: int | None,
        consistent: bool,
    ) -> A:
        position = (
            min_position if min_position is not None else (self.session.last_position if consistent else None)
        )
        response = await self._request("GET", path, params={**params, "min_position": position})
        return model.model_validate_json(response.content)

    async def get_party(
        self, party_id: str, *, min_position: int | None = None, consistent: bool = True
    ) -> answers.PartyEntry:
        """`getParty` of the projections."""
        return await self._query(answers.PartyEntry, f"/v1/parties/{party_id}", {}, min_position, consistent)

    async def list_party_obligations(
        self,
        party_id: str,
        *,
        status: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        min_position: int | None = None,
        consistent: bool = True,
    ) -> answers.PartyObligations:
        """`listPartyObligations` (`status`: `active`, `all` or `transferred`)."""
        params = {"status": status, "limit": limit, "cursor": cursor}
        path = f"/v1/parties/{party_id}/obligations"
        return await self._query(answers.PartyObligations, path, params, min_position, consistent)

    async def list_party_history(
        self,
        party_id: str,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        min_position: int | None = None,
        consistent: bool = True,
    ) -> answers.PartyHistory:
        """`listPartyHistory`, oldest first."""
        params = {"limit": limit, "cursor": cursor}
        path = f"/v1/parties/{party_id}/history"
        return await self._query(answers.PartyHistory, path, params, min_position, consistent)

    async def list_agreements(
        self,
        *,
        party_id: str | None = None,
        locality: str | None = None,
        status: str | None = None,
        q: str | None = None,
        document_type: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        min_position: int | None = None,
        consistent: bool = True,
    ) -> answers.AgreementList:
        """`listAgreements` (search)."""
        params = {
            "party_id": party_id,
            "locality": locality,
            "status": status,
            "q": q,
            "document_type": document_type,
            "limit": limit,
            "cursor": cursor,
        }
        return await self._query(answers.AgreementList, "/v1/agreements", params, min_position, consistent)

    async def get_agreement(
        self, agreement_id: str, *, min_position: int | None = None, consistent: bool = True
    ) -> answers.AgreementDocument:
        """`getAgreement` of the projections: the read model's document."""
        path = f"/v1/agreements/{agreement_id}"
        return await self._query(answers.AgreementDocument, path, {}, min_position, consistent)

    async def list_overdue_obligations(
        self,
        period: str,
        *,
        party_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        min_position: int | None = None,
        consistent: bool = True,
    ) -> answers.OverdueReport:
        """`listOverdueObligations`: the overdue report of a period (with `party_id`, of the
        agreements that party is a current party of)."""
        params = {"period": period, "party_id": party_id, "limit": limit, "cursor": cursor}
        return await self._query(
            answers.OverdueReport, "/v1/reports/overdue", params, min_position, consistent
        )

    async def get_projection_status(self) -> answers.ProjectionStatus:
        """`getProjectionStatus`."""
        return await self._query(answers.ProjectionStatus, "/v1/projections/status", {}, None, False)


class Coordreg:
    """Both services with one session: the projections read what the registry wrote."""

    def __init__(
        self,
        registry_url: str,
        projections_url: str,
        token: Token = None,
        *,
        policy: RetryPolicy | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.session = Session()
        self.registry = RegistryClient(
            registry_url, token, session=self.session, policy=policy, timeout=timeout
        )
        self.projections = ProjectionsClient(
            projections_url, token, session=self.session, policy=policy, timeout=timeout
        )

    async def aclose(self) -> None:
        await self.registry.aclose()
        await self.projections.aclose()

    async def __aenter__(self) -> Coordreg:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _new_key() -> str:
    return str(uuid.uuid4())
