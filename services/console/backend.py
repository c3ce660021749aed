"""The registry and the projections, reached over their public HTTP contract (docs/CONTRACT.md)
with a bearer token for the signed-in person."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from services.console.settings import ConsoleSettings

# The scopes a person needs here: read, and report progress.
SCOPES = ("progress:report", "agreements:read")
# The development key's JWK id and algorithm (services/common/auth DEV_JWK).
DEV_KID = "coordreg-dev-1"
DEV_ALGORITHM = "ES256"


class DevelopmentMinter:
    """Mints a short-lived token for a person with the development key, as `deploy/tokens.mint`
    does: the registry then records the person's subject as the events' actor."""

    def __init__(self, settings: ConsoleSettings) -> None:
        if settings.environment == "production":
            raise RuntimeError("the development key is refused in production")
        self._settings = settings
        self._key: PrivateKeyTypes | None = None

    def _private_key(self) -> PrivateKeyTypes:
        if self._key is None:
            pem = Path(self._settings.dev_signing_key).read_bytes()
            self._key = serialization.load_pem_private_key(pem, password=None)
        return self._key

    def mint(self, subject: str, party_ids: Iterable[str]) -> str:
        now = int(time.time())
        claims = {
            "iss": self._settings.dev_token_issuer,
            "aud": self._settings.dev_token_audience,
            "sub": subject,
            "iat": now,
            "exp": now + self._settings.dev_token_ttl_seconds,
            "jti": str(uuid.uuid4()),
            "scope": " ".join(SCOPES),
            "party_ids": list(party_ids),
        }
        key = self._private_key()
        return jwt.encode(claims, key, algorithm=DEV_ALGORITHM, headers={"kid": DEV_KID})  # type: ignore[arg-type]


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any


@dataclass(frozen=True)
class TextAnswer:
    """A text answer (a signed note) as sent: status, text and headers."""

    status: int
    text: str
    headers: httpx.Headers


class Backend:
    def __init__(self, settings: ConsoleSettings) -> None:
        timeout = settings.request_timeout_seconds
        self.registry = httpx.AsyncClient(base_url=settings.registry_url, timeout=timeout)
        self.projections = httpx.AsyncClient(base_url=settings.projections_url, timeout=timeout)

    async def aclose(self) -> None:
        await self.registry.aclose()
        await self.projections.aclose()

    @staticmethod
    def _answer(response: httpx.Response) -> Answer:
        try:
            body = response.json()
        except ValueError:
            body = None
        return Answer(response.status_code, body)

    async def read(
        self, client: httpx.AsyncClient, token: str, path: str, params: dict[str, Any] | None = None
    ) -> Answer:
        response = await client.get(path, params=params, headers={"Authorization": f"Bearer {token}"})
        return self._answer(response)

    async def agreement(self, token: str, agreement_id: str, params: dict[str, Any] | None = None) -> Answer:
        """One agreement's document from the projections (GET /v1/agreements/{id}, the id quoted:
        it comes from an address or a form)."""
        return await self.read(
            self.projections, token, f"/v1/agreements/{quote(agreement_id, safe='')}", params
        )

    async def party(
        self, token: str, party_id: str, part: str = "", params: dict[str, Any] | None = None
    ) -> Answer:
        """A body's directory entry, or its `part` (`/obligations`, `/history`), from the
        projections (the id quoted: it comes from an address, a form or a token)."""
        return await self.read(
            self.projections, token, f"/v1/parties/{quote(party_id, safe='')}{part}", params
        )

    async def read_text(self, client: httpx.AsyncClient, token: str, path: str) -> TextAnswer:
        response = await client.get(path, headers={"Authorization": f"Bearer {token}"})
        return TextAnswer(response.status_code, response.text, response.headers)

    async def report_progress(
        self, token: str, agreement_id: str, body: dict[str, Any], idempotency_key: str
    ) -> Answer:
        response = await self.registry.post(
            f"/v1/agreements/{agreement_id}/progress-reports",
            json=body,
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": idempotency_key},
        )
        return self._answer(response)
