"""Idempotency-Key records in PostgreSQL (the port: services/registry/service_layer/idempotency.py).

One row per (client, key) in registry.idempotency_keys. A claim writes a fresh token; the
event store records the response against that token in the append's transaction, so a claim
taken over after `stale_after` seconds makes the slow first attempt's append fail (ClaimLost).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

import asyncpg

from services.registry.service_layer.idempotency import Claim, KeyInFlight, KeyReused, StoredResponse


class PostgresIdempotencyStore:
    def __init__(self, pool: asyncpg.Pool, stale_after: float = 15.0) -> None:
        self.pool = pool
        self.stale_after = stale_after

    async def claim(self, client_id: str, key: str, fingerprint: str) -> Claim | StoredResponse:
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
            fingerprint,
            token,
            self.stale_after,
        )
        if row is not None and row["token"] == token:
            return Claim(client_id, key, token)
        existing = await self.pool.fetchrow(
            """SELECT fingerprint, status_code, response::text AS response
               FROM registry.idempotency_keys WHERE client_id = $1 AND key = $2""",
            client_id,
            key,
        )
        assert existing is not None
        if existing["fingerprint"] != fingerprint:
            raise KeyReused(key)
        if existing["status_code"] is None:
            raise KeyInFlight(key)
        return StoredResponse(existing["status_code"], json.loads(existing["response"]))

    async def record_refusal(self, claim: Claim, status_code: int, body: Mapping[str, Any]) -> None:
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

    async def release(self, claim: Claim) -> None:
        await self.pool.execute(
            "DELETE FROM registry.idempotency_keys WHERE client_id = $1 AND key = $2 AND token = $3::uuid",
            claim.client_id,
            claim.key,
            claim.token,
        )
