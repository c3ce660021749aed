"""What the transparency-log commands (`witness`, `prove`, `check-consistency`) share: the
registry's /v1/log API over HTTP, and keys and notes read from the command line.

Nothing the registry sends is trusted: a checkpoint counts only once its signature verifies
with a key the auditor gave (never the key the service serves), a proof only once it verifies
against such a checkpoint, a record only once its hash is recomputed here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx

from services.audit.common import AuditError
from services.transparency import note
from services.transparency.policy import Policy, PolicyError, parse_policy
from services.transparency.proofs import (
    OpenedCheckpoint,
    ProofDataError,
    b64,
    open_checkpoint,
    proof_hashes,
)

__all__ = [
    "LogApi",
    "LogApiError",
    "OpenedCheckpoint",
    "b64",
    "hashes_from",
    "open_checkpoint",
    "read_log_key",
    "read_note_file",
]

TOKEN_ENV = "AUDIT_REGISTRY_TOKEN"
URL_ENV = "AUDIT_REGISTRY_URL"


def hashes_from(values: object, what: str) -> list[bytes]:
    """The proof hashes of a response (a list of standard base64 strings)."""
    try:
        return proof_hashes(values, what)
    except ProofDataError as exc:
        raise LogApiError(0, str(exc)) from None


def read_log_key(value: str, what: str = "--log-key") -> note.Verifier:
    """A verifier key in Go's note format, given as its text or as a file holding it."""
    text = value
    if value and os.path.isfile(value):
        text = Path(value).read_text(encoding="utf-8")
    try:
        return note.parse_verifier_key(text.strip())
    except note.NoteError as exc:
        raise AuditError(f"{what}: not a verifier key <name>+<key ID>+<base64 key>: {exc}") from None


def read_policy(path: Path) -> Policy:
    """--policy: a C2SP tlog-policy file."""
    try:
        return parse_policy(path.read_bytes())
    except OSError as exc:
        raise AuditError(f"--policy: cannot read {path}: {exc.strerror}") from None
    except PolicyError as exc:
        raise AuditError(f"--policy: {path}: {exc}") from None


def read_note_file(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AuditError(f"{what}: cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise AuditError(f"{what}: {path} is not UTF-8 text") from None


class LogApiError(Exception):
    """The registry answered with an error status (or an unreadable body)."""

    def __init__(self, status: int, detail: str, body: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.body = body or {}

    @property
    def kind(self) -> str:
        """The problem type's last segment ("not-in-that-tree"), or ""."""
        return str(self.body.get("type", "")).rsplit("/", 1)[-1]


class LogApi:
    """The registry's /v1/log routes, read as plain data."""

    def __init__(self, base_url: str, token: str = "", *, timeout: float = 30.0) -> None:
        if not base_url:
            raise AuditError(f"no registry: pass --registry URL (or set {URL_ENV})")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.base_url = base_url.rstrip("/")
        self.client = httpx.AsyncClient(base_url=self.base_url, headers=headers, timeout=timeout)

    async def __aenter__(self) -> LogApi:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()

    @staticmethod
    def _check(response: httpx.Response) -> httpx.Response:
        if response.is_success:
            return response
        body: dict[str, Any] = {}
        try:
            parsed = response.json()
            if isinstance(parsed, dict):
                body = parsed
        except ValueError:
            pass
        detail = str(body.get("detail") or response.text[:300] or response.reason_phrase)
        raise LogApiError(response.status_code, f"{response.status_code}: {detail}", body)

    async def _json(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        response = self._check(await self.client.get(path, params=params))
        try:
            body = response.json()
        except ValueError:
            raise LogApiError(response.status_code, f"{path}: the answer is not JSON") from None
        if not isinstance(body, dict):
            raise LogApiError(response.status_code, f"{path}: the answer is not a JSON object")
        return body

    async def latest_checkpoint(self) -> str:
        return self._check(await self.client.get("/v1/log/checkpoint")).text

    async def inclusion(self, event_id: str, tree_size: int) -> dict[str, Any]:
        return await self._json("/v1/log/proofs/inclusion", {"event_id": event_id, "tree_size": tree_size})

    async def consistency(self, old_size: int, new_size: int) -> dict[str, Any]:
        return await self._json("/v1/log/proofs/consistency", {"from": old_size, "to": new_size})

    async def leaf(self, index: int) -> dict[str, Any]:
        body = await self._json("/v1/log/leaves", {"start": index, "end": index + 1})
        leaves = body.get("leaves")
        if not isinstance(leaves, list) or len(leaves) != 1 or not isinstance(leaves[0], dict):
            raise LogApiError(200, f"/v1/log/leaves did not return exactly leaf {index}")
        leaf: dict[str, Any] = leaves[0]
        return leaf

    async def cosign(self, text: str) -> tuple[int, str]:
        """POST a cosigned note: the status and the body (not raised: the caller reports it)."""
        response = await self.client.post(
            "/v1/log/cosignatures", content=text.encode("utf-8"), headers={"Content-Type": "text/plain"}
        )
        return response.status_code, response.text
