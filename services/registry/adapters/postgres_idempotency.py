"""Idempotency-Key (CONTRACT.md): the same key and body give the first response again.

- same key, same request    -> the stored response, no new event;
- same key, other request   -> 422;
- same key while running    -> 409.
Keys are scoped per client: one client never sees another's stored response. A record
left in flight by a crashed request (its events never committed, since the response is
written in the same transaction) is taken over after `stale_after` seconds.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg
from coordreg_contracts.envelope import canonical_json

MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class Completion:
    """Where a command's successful response is recorded, inside the append's transaction."""

    client_id: str
    key: str
    token: str
    status_code: int
    agreement_status: str = "active"

    def response(self, agreement_id: str, version: int, position: int) -> dict[str, Any]:
        return {
            "agreement_id": agreement_id,
            "version": version,
            "position": position,
            "status": self.agreement_status,
        }


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    body: dict[str, Any]


class KeyInFlight(Exception):
    """The first request with this key has not finished."""


class KeyReused(Exception):
    """The key was first used for a different request."""


class ClaimLost(Exception):
    """The in-flight record was taken over by a later attempt; this one must not commit."""


def fingerprint(method: str, path: str, if_match: str | None, body: Any) -> str:
    digest = hashlib.sha256()
    digest.update(f"{method} {path} {if_match or ''}\n".encode())
    digest.update(canonical_json(body))
    return digest.hexdigest()


class IdempotencyStore:
    def __init__(self, pool: asyncpg.Pool, stale_after: float = 15.0) -> None:
        self.pool = pool
        self.stale_after = stale_after

    async def begin(self, client_id: str, key: str, print_: str) -> StoredResponse | Completion:
        """Claims the key for this request, or returns the response of the first one."""
        token = str(uuid.uuid4())
        row = await self.pool.fetchrow(
            """INSERT INTO registry.idempotency_keys (client_id, key, fingerprint, token)
               VALUES ($1, $2, $3, $4::uuid)
               ON CONFLICT (client_id, key) DO UPDATE
                   SET token = EXCLUDED.token, started_at = now()
                   WHERE registry.idempotency_keys.status_code IS NULL
                     AND registry.idempotency_keys.fingerprint = EXCLUDED.fingerprint
                     AND registry.idempotency_keys.started_at < now() - make_interval(secs => $5)
               RETURNING token::text""",
            client_id,
            key,
            print_,
            token,
            self.stale_after,
        )
        if row is not None and row["token"] == token:
            return Completion(client_id, key, token, 0)
        existing = await self.pool.fetchrow(
            """SELECT fingerprint, status_code, response::text AS response
               FROM registry.idempotency_keys WHERE client_id = $1 AND key = $2""",
            client_id,
            key,
        )
        assert existing is not None
        if existing["fingerprint"] != print_:
            raise KeyReused(key)
        if existing["status_code"] is None:
            raise KeyInFlight(key)
        return StoredResponse(existing["status_code"], json.loads(existing["response"]))

    async def finish_refusal(self, claim: Completion, status_code: int, body: dict[str, Any]) -> None:
        """Remembers a refusal (4xx): the same request gets the same answer, and writes nothing."""
        await self.pool.execute(
            """UPDATE registry.idempotency_keys
               SET status_code = $4, response = $5::text::jsonb, completed_at = now()
               WHERE client_id = $1 AND key = $2 AND token = $3::uuid""",
            claim.client_id,
            claim.key,
            claim.token,
            status_code,
            json.dumps(body, ensure_ascii=False),
        )

    async def abandon(self, claim: Completion) -> None:
        """An unexpected failure: forget the claim so that the client can retry."""
        await self.pool.execute(
            "DELETE FROM registry.idempotency_keys WHERE client_id = $1 AND key = $2 AND token = $3::uuid",
            claim.client_id,
            claim.key,
            claim.token,
        )
