"""The witness feeder: submits each new checkpoint to the policy's witnesses (C2SP tlog-witness,
`POST <url>/add-checkpoint`) and stores the cosignatures they return, once verified.

It runs in every relay process beside the integrator; one leads at a time, by an advisory lock
of its own. The leader looks for the latest checkpoint every `poll_seconds`; each witness with a
URL in the policy has a task of its own, so a witness that is down or slow holds up neither the
log nor the other witnesses. For each witness the feeder keeps the size it last cosigned (at
start: the largest tree size of its stored cosignatures, else 0) and, when a newer checkpoint is
there, sends `old <that size>`, the consistency proof from it, and the checkpoint as the log
signed it (not the other witnesses' cosignatures: the witness would ignore them).

The answers (services/transparency/witness_protocol.py): a cosignature is verified with the
policy's key for that witness before it is stored; 409 starts again from the size the witness
holds (an alarm if that size is beyond every checkpoint the log issued); 400, 403, 404, 422 and
unverifiable answers are alarms, counted in `log_witness_alarms_total{witness,status}` and
logged at error level with the witness, the status and the answer's first bytes. A timeout, a
refused connection or any other status is a failure: the witness is tried again after 1, 2, 4 …
seconds, at most `backoff_max_seconds` apart. Each call has a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import asyncpg
import httpx
import structlog
from prometheus_client import Counter, Gauge, Histogram

from services.registry.adapters import log_reads
from services.registry.adapters.leadership import take_lead
from services.registry.adapters.tree_integrator import with_hashes
from services.transparency import merkle, note
from services.transparency.policy import Policy, PolicyWitness
from services.transparency.witness_protocol import (
    Alarm,
    Answer,
    Conflict,
    Cosigned,
    Failed,
    add_checkpoint_body,
    add_checkpoint_url,
    read_answer,
)

log = structlog.get_logger(__name__)

# A key of its own: the relay's and the integrator's locks are others, so each may lead alone.
FEEDER_LOCK = 0x7769746E  # "witn"
ALARMS = Counter(
    "log_witness_alarms_total",
    "Witness answers that refuse the log's checkpoint or break the protocol (by HTTP status, "
    "or bad-cosignature / bad-size)",
    ["witness", "status"],
)
FAILURES = Counter(
    "log_witness_failures_total",
    "add-checkpoint calls that got no usable answer (timeout, unreachable, or the HTTP status)",
    ["witness", "reason"],
)
REQUEST_SECONDS = Histogram(
    "log_witness_request_seconds",
    "add-checkpoint round trips, answered or not",
    ["witness"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
COSIGNED_SIZE = Gauge("log_witness_cosigned_size", "The tree size each witness last cosigned", ["witness"])
COSIGNATURES = Counter("log_witness_cosignatures_total", "Cosignatures verified and stored", ["witness"])
BACKOFF = Gauge(
    "log_witness_backoff_seconds", "The wait before a witness is tried again (0: not failing)", ["witness"]
)
IS_LEADER = Gauge("log_witness_feeder_is_leader", "1 while this process feeds the witnesses")
# The `status` labels of log_witness_alarms_total: the refusals, a 409 beyond the log's latest
# checkpoint, and answers that break the protocol (witness_protocol.read_answer).
ALARM_REASONS = ("400", "403", "404", "409", "422", "bad-cosignature", "bad-size")
_CONFLICTS_IN_A_ROW = 3  # then a witness whose size keeps moving is backed off, not chased


@dataclass(frozen=True)
class LatestCheckpoint:
    size: int
    note: str


@dataclass
class _WitnessState:
    witness: PolicyWitness
    url: str
    cosigned: int | None = None  # None: not read from the database yet
    failures: int = 0
    conflicts: int = 0
    retry_at: float = 0.0
    wake: asyncio.Event = field(default_factory=asyncio.Event)


async def stored_size(conn: asyncpg.Pool | asyncpg.Connection, key_name: str) -> int:
    """The largest tree size a witness's stored cosignatures are for (by its key name), or 0."""
    size = await conn.fetchval(
        "SELECT coalesce(max(tree_size), 0) FROM registry.cosignatures WHERE witness = $1", key_name
    )
    return int(size)


async def _first_of(a: asyncio.Event, b: asyncio.Event, *, timeout: float) -> None:
    """Until either event is set, or `timeout` seconds."""
    waits = [asyncio.ensure_future(a.wait()), asyncio.ensure_future(b.wait())]
    try:
        await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in waits:
            waiting.cancel()


class WitnessFeeder:
    def __init__(
        self,
        pool: asyncpg.Pool,
        witnesses: Sequence[PolicyWitness],
        *,
        timeout_seconds: float = 5.0,
        backoff_max_seconds: float = 300.0,
        poll_seconds: float = 1.0,
        max_skew_seconds: int = 300,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.pool = pool
        self.max_skew_seconds = max_skew_seconds
        self.timeout_seconds = timeout_seconds
        self.backoff_max_seconds = backoff_max_seconds
        self.poll_seconds = poll_seconds
        self.checkpointed = asyncio.Event()
        # Keep-alive connections to the witnesses, as the spec recommends.
        self.client = client or httpx.AsyncClient()
        self.states = {w.name: _WitnessState(w, w.url) for w in witnesses if w.url}
        self.latest: LatestCheckpoint | None = None
        for name in self.states:  # exported from the start, so that the alerts see a 0
            for status in ALARM_REASONS:
                ALARMS.labels(name, status)
            BACKOFF.labels(name).set(0)

    @classmethod
    def for_policy(
        cls,
        pool: asyncpg.Pool,
        policy: Policy | None,
        *,
        timeout_seconds: float,
        backoff_max_seconds: float,
        poll_seconds: float,
        max_skew_seconds: int,
    ) -> WitnessFeeder | None:
        """A feeder for the policy's witnesses that have a URL; None when none has."""
        if policy is None or not any(w.url for w in policy.witnesses):
            return None
        return cls(
            pool,
            policy.witnesses,
            timeout_seconds=timeout_seconds,
            backoff_max_seconds=backoff_max_seconds,
            poll_seconds=poll_seconds,
            max_skew_seconds=max_skew_seconds,
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    # --- one call ----------------------------------------------------------------------

    async def submit(self, witness: str, old_size: int, size: int, signed_note: str) -> Answer:
        """Sends one add-checkpoint to `witness` (its policy name): the checkpoint of `size` as
        `signed_note`, with the consistency proof from `old_size`. Counts and logs what comes
        back; stores a cosignature once verified, and only for the checkpoint this log stored
        with the same text. Transport errors come back as `Failed` (status 0)."""
        state = self.states[witness]
        key = state.witness.verifier
        if 0 < old_size < size:
            async with self.pool.acquire() as conn:
                proof = await with_hashes(conn, lambda read: merkle.consistency_proof(size, old_size, read))
        else:
            proof = []
        body = add_checkpoint_body(old_size, proof, signed_note)
        started = time.perf_counter()
        try:
            response = await self.client.post(
                add_checkpoint_url(state.url), content=body, timeout=self.timeout_seconds
            )
        except httpx.TimeoutException:
            answer: Answer = Failed(0, "timeout")
        except httpx.HTTPError as exc:
            answer = Failed(0, f"unreachable: {exc!r}"[:200])
        else:
            answer = read_answer(
                response.status_code,
                response.headers.get("content-type", ""),
                response.content,
                signed_note,
                key,
                not_after=int(time.time()) + self.max_skew_seconds,
            )
        finally:
            REQUEST_SECONDS.labels(witness).observe(time.perf_counter() - started)
        context = {"key_name": key.name, "old_size": old_size, "tree_size": size}
        if isinstance(answer, Cosigned):
            await self._store(witness, answer, size, signed_note, context)
        elif isinstance(answer, Alarm):
            self.alarm(witness, answer.reason, answer.excerpt, **context)
        elif isinstance(answer, Failed):
            reason = answer.excerpt.split(":", 1)[0] if answer.status == 0 else str(answer.status)
            FAILURES.labels(witness, reason).inc()
            log.warning(
                "witness did not cosign; trying again later",
                witness=witness,
                **context,
                reason=reason,
                answer=answer.excerpt,
            )
        return answer

    def alarm(self, witness: str, status: str, answer: str, **context: object) -> None:
        ALARMS.labels(witness, status).inc()
        log.error(
            "witness alarm: the witness refused the log's checkpoint",
            witness=witness,
            status=status,
            answer=answer,
            **context,
        )

    async def _store(
        self, witness: str, answer: Cosigned, size: int, signed_note: str, context: dict[str, object]
    ) -> None:
        body = note.parse_note(signed_note).body
        async with self.pool.acquire() as conn, conn.transaction():
            stored = await log_reads.checkpoint_note(conn, size)
            if stored is None or note.parse_note(stored).body != body:
                log.error(
                    "a cosignature of a checkpoint this log did not store: not kept",
                    witness=witness,
                    **context,
                )
                return
            await log_reads.add_cosignatures(conn, size, [(s.name, s.line()) for s in answer.signatures])
        COSIGNATURES.labels(witness).inc()

    # --- leading -----------------------------------------------------------------------

    def nudge(self) -> None:
        """A checkpoint was just signed (by the integrator in this process): look now, not at
        the next poll. The poll still finds those another process signs."""
        self.checkpointed.set()

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                try:
                    await self._lead(stop)
                except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    log.warning("witness feeder lost its connection; starting over", error=repr(exc))
                IS_LEADER.set(0)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)
        finally:
            await self.aclose()

    async def _lead(self, stop: asyncio.Event) -> None:
        conn = await self.pool.acquire()
        tasks: list[asyncio.Task[None]] = []
        try:
            if not await take_lead(conn, FEEDER_LOCK, stop):
                return
            IS_LEADER.set(1)
            log.info("witness feeder is the leader", witnesses=sorted(self.states))
            for state in self.states.values():
                state.cosigned = None  # read again: another leader may have fed it meanwhile
                tasks.append(asyncio.create_task(self._feed(state)))
            while not stop.is_set():
                # Cleared before the read: a nudge that comes after it is not lost.
                self.checkpointed.clear()
                row = await conn.fetchrow(
                    "SELECT tree_size, note FROM registry.checkpoints ORDER BY tree_size DESC LIMIT 1"
                )
                if row is not None and (self.latest is None or row["tree_size"] > self.latest.size):
                    self.latest = LatestCheckpoint(int(row["tree_size"]), str(row["note"]))
                    for state in self.states.values():
                        state.wake.set()
                await _first_of(stop, self.checkpointed, timeout=self.poll_seconds)
        finally:
            IS_LEADER.set(0)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await conn.execute("SELECT pg_advisory_unlock($1)", FEEDER_LOCK)
            await self.pool.release(conn)

    async def _feed(self, state: _WitnessState) -> None:
        """One witness's loop: submits each newer checkpoint, backing off after failures."""
        loop = asyncio.get_running_loop()
        while True:
            latest = self.latest
            wait: float | None = None
            if latest is not None and (state.cosigned is None or state.cosigned < latest.size):
                if loop.time() >= state.retry_at:
                    await self._try(state, latest)
                    continue
                wait = state.retry_at - loop.time()
            state.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.wake.wait(), wait)

    async def _try(self, state: _WitnessState, latest: LatestCheckpoint) -> None:
        name = state.witness.name
        try:
            if state.cosigned is None:
                state.cosigned = await stored_size(self.pool, state.witness.verifier.name)
                COSIGNED_SIZE.labels(name).set(state.cosigned)
                if state.cosigned >= latest.size:
                    return
            answer = await self.submit(name, state.cosigned, latest.size, latest.note)
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning(
                "witness feeder could not prepare or store; trying again later", witness=name, error=repr(exc)
            )
            self._back_off(state)
            return
        if isinstance(answer, Cosigned):
            state.cosigned, state.failures, state.conflicts, state.retry_at = latest.size, 0, 0, 0.0
            COSIGNED_SIZE.labels(name).set(latest.size)
            BACKOFF.labels(name).set(0)
        elif isinstance(answer, Conflict):
            log.info(
                "witness holds another size; starting again from it",
                witness=name,
                sent_old_size=state.cosigned,
                witness_size=answer.size,
                tree_size=latest.size,
            )
            if answer.size > latest.size:
                # The witness cosigned a tree larger than any this log issued: someone else
                # presented checkpoints of this log to it.
                self.alarm(
                    name,
                    "409",
                    f"{answer.size}\n",
                    key_name=state.witness.verifier.name,
                    tree_size=latest.size,
                )
                self._back_off(state)
                return
            state.cosigned = answer.size
            COSIGNED_SIZE.labels(name).set(answer.size)
            state.conflicts += 1
            if state.conflicts >= _CONFLICTS_IN_A_ROW:
                self._back_off(state)
        else:
            self._back_off(state)

    def _back_off(self, state: _WitnessState) -> None:
        state.failures += 1
        state.conflicts = 0
        delay = min(2.0 ** (state.failures - 1), self.backoff_max_seconds)
        state.retry_at = asyncio.get_running_loop().time() + delay
        BACKOFF.labels(state.witness.name).set(delay)
