"""Clients of the cluster that behave as the contract asks of them: every command carries its own
Idempotency-Key, and a command without a final answer (no response, 5xx, or a 409 with
Retry-After) is sent again with the same key and body until it gets one.

Each command is marked (the signing's document number, the report's summary) with its key,
so the store can be asked afterwards how many events each acknowledged key produced.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx

from deploy.tokens import demo_token
from tests.faults.harness import LOAD_CAP_FACTOR, LOAD_CAP_SECONDS
from tests.support.builders import report_body, sign_body


@dataclass
class Acknowledged:
    key: str
    agreement_id: str
    position: int
    at: float  # time.monotonic() of the 2xx
    attempts: int


@dataclass
class HttpLoad:
    """Bounded: `commands` commands, then it stops by itself; given `until`, it goes on past them
    until that event is set (the faults a scenario asks for have happened), within a cap of
    LOAD_CAP_FACTOR times the commands and LOAD_CAP_SECONDS: a scenario's preconditions then
    hold by construction, not by timing (issue 20)."""

    base_url: str
    commands: int
    concurrency: int = 16
    signings_share: float = 0.2
    give_up_after: float = 120.0  # seconds one command may keep being retried
    acknowledged: list[Acknowledged] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)  # final non-2xx answers, by status
    retried_statuses: Counter[str] = field(default_factory=Counter)  # why attempts were sent again
    unanswered: int = 0  # commands still without a final answer after give_up_after
    retries: int = 0  # requests sent again with the same key
    failures: list[float] = field(default_factory=list)  # time.monotonic() of each failed attempt
    agreements: list[str] = field(default_factory=list)
    seconds: float = 0.0  # from the first request to the last answer
    issued: int = 0  # commands sent (at least `commands`; more while waiting for `until`)
    capped: bool = False  # the cap stopped it before `until` was set

    async def run(self, until: asyncio.Event | None = None, cap_seconds: float = LOAD_CAP_SECONDS) -> None:
        started = time.monotonic()
        try:
            await self._run(until, started + cap_seconds)
        finally:
            self.seconds = time.monotonic() - started

    def _more(self, index: int, until: asyncio.Event | None, deadline: float) -> bool:
        if index < self.commands:
            return True
        if until is None or until.is_set():
            return False
        self.capped = self.capped or index >= self.commands * LOAD_CAP_FACTOR or time.monotonic() > deadline
        return not self.capped

    async def _run(self, until: asyncio.Event | None, deadline: float) -> None:
        headers = {"Authorization": f"Bearer {demo_token()}"}
        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        signings = max(1, int(self.commands * self.signings_share))
        counter = itertools.count()
        async with httpx.AsyncClient(
            base_url=self.base_url, headers=headers, limits=limits, timeout=10
        ) as client:

            async def worker() -> None:
                while self._more(index := next(counter), until, deadline):
                    self.issued += 1
                    await self._one(client, index < signings or not self.agreements)

            await asyncio.gather(*(worker() for _ in range(self.concurrency)))

    async def _one(self, client: httpx.AsyncClient, signing: bool) -> None:
        key = str(uuid.uuid4())
        if signing:
            path, body = "/v1/agreements", sign_body(document_number=f"{key}/KH-UBND")
        else:
            agreement = random.choice(self.agreements)
            path = f"/v1/agreements/{agreement}/progress-reports"
            body = report_body(period=random.choice(["2024", "2025", "2026"]), summary=f"cluster {key}")
        started = time.monotonic()
        attempts = 0
        while time.monotonic() - started < self.give_up_after:
            attempts += 1
            if attempts > 1:
                self.retries += 1
            try:
                response = await client.post(path, json=body, headers={"Idempotency-Key": key})
            except httpx.TransportError as exc:
                self.failures.append(time.monotonic())
                self.retried_statuses[type(exc).__name__] += 1
                await asyncio.sleep(0.2)
                continue
            if response.status_code >= 500 or "Retry-After" in response.headers:
                self.failures.append(time.monotonic())
                self.retried_statuses[str(response.status_code)] += 1
                await asyncio.sleep(min(float(response.headers.get("Retry-After", "0.2")), 1.0))
                continue
            if response.is_success:
                answer = response.json()
                self.acknowledged.append(
                    Acknowledged(key, answer["agreement_id"], answer["position"], time.monotonic(), attempts)
                )
                if signing:
                    self.agreements.append(answer["agreement_id"])
            else:
                self.refused[f"{response.status_code} {response.json().get('title', '')}"] += 1
            return
        self.unanswered += 1

    def first_success_after(self, moment: float) -> float:
        """Seconds from `moment` until the first command acknowledged after an attempt failed
        after it: the service answering again, for commands not caught in the fault."""
        failed = [at for at in self.failures if at >= moment]
        if not failed:
            return 0.0
        later = [ack.at for ack in self.acknowledged if ack.at > min(failed)]
        return (min(later) if later else max(failed)) - moment

    def recovery_after(self, moment: float) -> float:
        """Seconds from `moment` until the first command acknowledged after the last failure
        that followed it (0 if no attempt failed after it)."""
        failed = [at for at in self.failures if at >= moment]
        if not failed:
            return 0.0
        later = [ack.at for ack in self.acknowledged if ack.at > max(failed)]
        return (min(later) if later else max(failed)) - moment


@dataclass
class Effects:
    """How many events each acknowledged key left in the store."""

    acknowledged: int
    missing: int  # acknowledged, yet no event carries the key
    twice: int  # more than one event carries the key
    positions_differ: int  # the event's position is not the one the 2xx answered


async def effects(pool: asyncpg.Pool, acknowledged: list[Acknowledged]) -> Effects:
    rows = await pool.fetch("SELECT position, envelope FROM registry.events")
    by_key: dict[str, list[int]] = {}
    for row in rows:
        data: dict[str, Any] = json.loads(row["envelope"]).get("data", {})
        marker = str(data.get("document_number", "")).removesuffix("/KH-UBND")
        if not marker:
            marker = str(data.get("summary", "")).removeprefix("cluster ")
        by_key.setdefault(marker, []).append(int(row["position"]))
    missing = sum(1 for ack in acknowledged if ack.key not in by_key)
    twice = sum(1 for ack in acknowledged if len(by_key.get(ack.key, [])) > 1)
    differ = sum(1 for ack in acknowledged if ack.key in by_key and ack.position not in by_key[ack.key])
    return Effects(len(acknowledged), missing, twice, differ)
