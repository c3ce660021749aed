"""The succession process manager: carries a party's succession into every agreement it belongs to
(docs/CONTRACT.md, decision 17).

Driven by the store's succession queue, which the succession's own transaction fills, never by a
message that could be lost or delivered twice. For each queued party it finds every agreement
that ever named it and, on each, decides the transfer on the agreement's current state
(`decide_transfer`) and appends it with the usual optimistic concurrency. That decision is the
idempotence: an agreement transferred already, closed, or that the party left gives no event, so
a crash mid-way (`kill -9`), a second manager running at the same time, or the same party queued
again all end with exactly one transfer per agreement. The party leaves the queue only after
every agreement was dealt with.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import structlog

from services.registry.domain.directory import decide_transfer
from services.registry.service_layer.binding import Caller
from services.registry.service_layer.event_store import ConcurrencyError, DirectoryRead, EventStore
from services.registry.service_layer.locks import StreamLocks
from services.registry.service_layer.messages import CommandContext
from services.registry.service_layer.repository import AgreementRepository, LoadedParty, PartyRepository
from services.registry.service_layer.retry import RetryPolicy
from services.registry.service_layer.sealing import seal_events, utc_now

log = structlog.get_logger(__name__)
# Names the transfer events: one id per (succession, agreement), so that even a transfer decided
# twice on two versions of an agreement could not be stored twice (registry.events' event_id is unique).
TRANSFER_NAMESPACE = uuid.UUID("6f1d4a52-3c55-4f0e-9a0b-5b1f4d2e7c11")


@dataclass(frozen=True)
class Carried:
    party_id: str
    transferred: int  # agreements that got their transfer in this run
    unchanged: int  # agreements that needed none (closed, transferred already, the party left)


class SuccessionManager:
    def __init__(
        self,
        store: EventStore,
        agreements: AgreementRepository,
        parties: PartyRepository,
        *,
        clock: Callable[[], str] = utc_now,
        retry: RetryPolicy | None = None,
        locks: StreamLocks | None = None,
    ) -> None:
        self.store = store
        self.agreements = agreements
        self.parties = parties
        self.clock = clock
        # The command bus's policy on lost races; the bus's locks, so that a transfer queues up
        # behind the commands on its agreement in this process instead of racing them.
        self.retry = retry or RetryPolicy(20)
        self.locks = locks or StreamLocks()

    async def run_pending(self) -> list[Carried]:
        """Every queued succession, carried and taken off the queue. A party whose carrying fails
        stays queued for the next run and does not hold up the parties queued after it."""
        done = []
        for pending in await self.store.pending_successions():
            try:
                carried = await self.carry(pending.party_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("succession not carried; it stays queued", party_id=pending.party_id)
                continue
            await self.store.finish_succession(pending)
            done.append(carried)
        return done

    async def carry(self, party_id: str) -> Carried:
        predecessor = await self.parties.get(party_id)
        if predecessor.state is None or predecessor.state.succession is None:
            return Carried(party_id, 0, 0)
        # The succession never changes once recorded: its context is read once for every agreement.
        context = await self._context(party_id, predecessor.succession_event_id)
        transferred = unchanged = 0
        for agreement_id in await self.store.streams_naming(party_id):
            if await self._transfer(agreement_id, predecessor, context):
                transferred += 1
            else:
                unchanged += 1
        log.info("succession carried", party_id=party_id, transferred=transferred, unchanged=unchanged)
        return Carried(party_id, transferred, unchanged)

    async def _transfer(self, agreement_id: str, predecessor: LoadedParty, context: CommandContext) -> bool:
        async def step() -> bool:
            async with self.locks.of(agreement_id):
                return await self._transfer_once(agreement_id, predecessor, context)

        return await self.retry.run(
            step, exhausted=lambda: ConcurrencyError(agreement_id), stream_id=agreement_id
        )

    async def _transfer_once(
        self, agreement_id: str, predecessor: LoadedParty, context: CommandContext
    ) -> bool:
        """The transfer decided on the agreement's current state and appended, or nothing to do;
        raises ConcurrencyError when the append lost a race."""
        state = predecessor.state
        assert state is not None and state.succession is not None
        successor_ids = state.succession.successor_ids()
        transfer_id = str(uuid.uuid5(TRANSFER_NAMESPACE, f"{predecessor.succession_event_id}/{agreement_id}"))
        loaded = await self.agreements.get(agreement_id)
        if loaded.state is None:
            return False
        directory, versions = await self.parties.chain(successor_ids)
        events = decide_transfer(loaded.state, state, predecessor.succession_event_id, directory)
        if not events:
            return False
        envelopes = seal_events(
            events,
            stream_id=agreement_id,
            version=loaded.state.version,
            prevhash=loaded.last_hash,
            context=context,
            recorded_at=self.clock,
            new_id=functools.partial(str, transfer_id),
        )
        # A successor that has ceased since is carried on by its own succession, queued here.
        ceased = [s for s in successor_ids if (entry := directory.get(s)) is not None and entry.ceased]
        await self.store.append(
            agreement_id,
            loaded.state.version,
            envelopes,
            versions_read=DirectoryRead({s: versions[s] for s in successor_ids}),
            queue_successions=ceased,
        )
        return True

    async def _context(self, party_id: str, succession_event_id: str) -> CommandContext:
        """The transfer is caused by the succession event and correlated with its request; its actor
        is whoever recorded the succession."""
        for envelope in reversed(await self.parties.envelopes(party_id)):
            if envelope.id == succession_event_id:
                return CommandContext(
                    caller=Caller(envelope.actor, frozenset()),
                    correlation_id=envelope.correlationid,
                    causation_id=envelope.id,
                )
        raise LookupError(f"no succession event {succession_event_id} on party {party_id!r}")


async def run_forever(manager: SuccessionManager, wake: asyncio.Event, *, idle_seconds: float = 1.0) -> None:
    """The registry's background loop: woken by the queue's notification, or every `idle_seconds`."""
    while True:
        try:
            await manager.run_pending()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("succession run failed; retrying")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), idle_seconds)
        wake.clear()
