"""The registry's log witnessed by the standard programs: two litewitness (filippo.io/torchwood)
and one omniwitness (github.com/transparency-dev/witness), built from the Go module proxy
(deploy/local/witnesses.py), fed by the relay's own feeder over C2SP tlog-witness.

One stack for the module: the registry on a real PostgreSQL database, with a policy file naming
the three witnesses and a 2-of-3 quorum (REGISTRY_LOG_POLICY); the integrator and the witness
feeder run as the relay runs them, on the relay's database role. The tests go in order: every
checkpoint cosigned by all three; one witness stopped, then two, then both back; a witness
ahead of what the feeder knows (409); a split view refused.
"""

from __future__ import annotations

import asyncio
import functools
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import pytest
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from deploy.local.witnesses import Witness, policy_text
from services.common.db import create_pool
from services.common.kafka_admin import PARTITIONS, TOPIC_CONFIG, ensure_topic
from services.registry.adapters.tree_integrator import TreeIntegrator, with_hashes
from services.registry.adapters.witness_feeder import WitnessFeeder
from services.transparency import merkle, note
from services.transparency.log import DEV_LOG_ORIGIN, DEV_LOG_VERIFIER_KEY, load_signer
from services.transparency.policy import Policy, parse_policy
from services.transparency.witness_protocol import Alarm, add_checkpoint_body
from tests.support.kafka import Brokers
from tests.support.log import write
from tests.support.stack import Stack, running_stack
from tests.support.witnesses import running_witnesses

LOG_KEY = note.parse_verifier_key(DEV_LOG_VERIFIER_KEY)
NAMES = ("a", "b", "c")  # the policy's names of the three witnesses
WAIT_SECONDS = 60.0  # a bound on every wait: a wait that ends there fails the test


@dataclass(frozen=True)
class Call:
    witness: str
    status: int
    seconds: float


class RecordingTransport(httpx.AsyncBaseTransport):
    """The feeder's HTTP transport, recording each add-checkpoint's witness, status and time."""

    def __init__(self, names: dict[int, str]) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.names = names
        self.calls: list[Call] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        started = time.perf_counter()
        response = await self.inner.handle_async_request(request)
        self.calls.append(
            Call(
                self.names.get(request.url.port or 0, "?"),
                response.status_code,
                time.perf_counter() - started,
            )
        )
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class Witnessed:
    stack: Stack
    witnesses: dict[str, Witness]
    policy: Policy
    relay_pool: asyncpg.Pool
    transport: RecordingTransport
    feeder: WitnessFeeder | None = None
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    def start_feeder(self) -> None:
        """A new feeder (fresh state: what it knows of the witnesses comes from the database)."""
        assert self._task is None
        self.feeder = WitnessFeeder(
            self.relay_pool,
            self.policy.witnesses,
            timeout_seconds=5.0,
            backoff_max_seconds=2.0,
            poll_seconds=1.0,  # the default: the integrator's nudge, not the poll, finds checkpoints
            client=httpx.AsyncClient(transport=self.transport),
        )
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self.feeder.run(self._stop))

    async def signed(self, size: int, note_text: str) -> None:
        """The integrator signed a checkpoint: the feeder is told, as relay_main tells it."""
        if self.feeder is not None:
            self.feeder.nudge()

    async def stop_feeder(self) -> None:
        assert self._task is not None
        self._stop.set()
        await asyncio.wait_for(self._task, 30)
        self._task = None

    async def cosigners(self, size: int) -> set[str]:
        """The policy names of the witnesses whose stored cosignatures on checkpoint `size` verify."""
        served = await self.stack.registry.get(f"/v1/log/checkpoints/{size}")
        assert served.status_code == 200, served.text
        return set(self.policy.cosigners(served.text))

    async def latest_size(self) -> int:
        return int(
            await self.stack.pool.fetchval("SELECT coalesce(max(tree_size), -1) FROM registry.checkpoints")
        )

    async def grow(self) -> int:
        """Writes an agreement and waits for the checkpoint that holds it; its size."""
        before = int(await self.stack.pool.fetchval("SELECT count(*) FROM registry.events"))
        await write(self.stack, agreements=1, reports=0)
        after = int(await self.stack.pool.fetchval("SELECT count(*) FROM registry.events"))
        assert after > before
        await until(lambda: self._checkpointed(after), "a checkpoint of the new events")
        return await self.latest_size()

    async def _checkpointed(self, size: int) -> bool:
        return await self.latest_size() >= size


async def until(check: Callable[[], Awaitable[bool]], what: str, seconds: float = WAIT_SECONDS) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, f"not within {seconds}s: {what}"
        await asyncio.sleep(0.05)


@pytest.fixture(scope="module")
async def witnessed(
    postgres_url: str, kafka: Brokers, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Witnessed]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    database_url = f"{postgres_url.rpartition('/')[0]}/{name}"
    topic = f"agreements.events.test-{uuid.uuid4().hex[:10]}"
    await ensure_topic(kafka.admin, topic, PARTITIONS, TOPIC_CONFIG)
    kinds = ["litewitness", "litewitness", "omniwitness"]
    folder = Path(tmp_path_factory.mktemp("witnesses"))
    signer = load_signer(environment="development", origin="", key_pem="")
    with running_witnesses(kinds, DEV_LOG_ORIGIN, DEV_LOG_VERIFIER_KEY, folder) as started:
        witnesses = dict(zip(NAMES, started, strict=True))
        text = policy_text(DEV_LOG_VERIFIER_KEY, witnesses, 2)
        policy = parse_policy(text)
        async with running_stack(
            database_url,
            kafka,
            topic,
            relay=False,
            projections=False,
            registry_options={"log_policy": text},
        ) as stack:
            relay_pool = await create_pool(stack.accounts.urls["relay"], min_size=1, max_size=6)
            transport = RecordingTransport({w.port: n for n, w in witnesses.items()})
            state = Witnessed(stack, witnesses, policy, relay_pool, transport)
            stop = asyncio.Event()
            # As the relay runs them (services/registry/entrypoints/relay_main.py: each signed
            # checkpoint nudges the feeder), checkpoints every half second rather than every ten.
            integrator = asyncio.create_task(
                TreeIntegrator(relay_pool, signer, checkpoint_seconds=0.5, publish=state.signed).run(stop)
            )
            state.start_feeder()
            try:
                yield state
            finally:
                stop.set()
                if state._task is not None:
                    await state.stop_feeder()
                await asyncio.wait_for(integrator, 30)
                await transport.aclose()
                await relay_pool.close()
    admin = await asyncpg.connect(postgres_url)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


async def test_every_checkpoint_gets_three_verified_cosignatures(witnessed: Witnessed) -> None:
    w = witnessed
    quorum_seconds: list[float] = []
    sizes = []
    calls_before = len(w.transport.calls)
    for _ in range(5):
        size = await w.grow()
        sizes.append(size)
        await until(functools.partial(_all_three, w, size), f"three cosignatures on checkpoint {size}")
        issued = await w.stack.pool.fetchval(
            "SELECT issued_at FROM registry.checkpoints WHERE tree_size = $1", size
        )
        received = sorted(
            await w.stack.pool.fetchval(
                "SELECT array_agg(received_at) FROM registry.cosignatures WHERE tree_size = $1", size
            )
        )
        quorum_seconds.append((received[1] - issued).total_seconds())  # the second of three: 2 of 3
    # Served with the note: every line verifies with note.open_note and the witnesses' own keys.
    served = await w.stack.registry.get("/v1/log/checkpoint")
    assert served.status_code == 200
    keys = [w.witnesses[n].verifier for n in NAMES]
    opened, verified = note.open_note(served.text, [LOG_KEY, *keys])
    assert note.Checkpoint.parse(opened.body).size == sizes[-1]
    assert {s.name for s in verified} == {LOG_KEY.name, *(k.name for k in keys)}
    assert all(note.cosignature_time(s) > 0 for s in verified if s.name != LOG_KEY.name)
    assert w.policy.quorum_met(w.policy.cosigners(served.text))
    # Figures for the closing note (printed with -s).
    calls = w.transport.calls[calls_before:]
    print(
        f"\ncheckpoints {sizes}: {len(calls)} add-checkpoint calls, {len(calls) / len(sizes):.1f} a checkpoint"
    )
    for n in NAMES:
        mine = [c.seconds * 1000 for c in calls if c.witness == n]
        print(
            f"  {n} ({w.witnesses[n].kind}): {len(mine)} calls, median {statistics.median(mine):.1f} ms, "
            f"max {max(mine):.1f} ms, statuses {sorted({c.status for c in calls if c.witness == n})}"
        )
    print(
        f"  quorum (2 of 3) after the checkpoint was signed: median {statistics.median(quorum_seconds):.3f} s, "
        f"max {max(quorum_seconds):.3f} s"
    )


async def _all_three(w: Witnessed, size: int) -> bool:
    return await w.cosigners(size) == set(NAMES)


async def test_a_quorum_of_two_holds_with_one_witness_down_not_with_two(witnessed: Witnessed) -> None:
    w = witnessed
    w.witnesses["c"].stop()
    size = await w.grow()
    await until(lambda: _cosigned_by(w, size, {"a", "b"}), f"a and b cosigning {size}")
    assert await w.cosigners(size) == {"a", "b"}
    assert w.policy.quorum_met(await w.cosigners(size))

    w.witnesses["b"].stop()
    lonely = await w.grow()
    await until(lambda: _cosigned_by(w, lonely, {"a"}), f"a cosigning {lonely}")
    assert await w.cosigners(lonely) == {"a"}
    assert not w.policy.quorum_met(await w.cosigners(lonely))
    # The stopped witnesses were tried and failed (connection refused), never an alarm.
    assert not [c for c in w.transport.calls if c.witness in ("b", "c") and c.status >= 400]

    # Back: each catches up from the size it last cosigned, with the consistency proof from it:
    # the witness checks both, so a first answer of 200 (no 409, no 422) shows they were right.
    calls_before = len(w.transport.calls)
    w.witnesses["b"].start()
    w.witnesses["c"].start()
    latest = await w.grow()
    await until(lambda: _all_three(w, latest), f"b and c catching up to {latest}")
    answered = [c for c in w.transport.calls[calls_before:] if c.witness in ("b", "c") and c.status]
    assert answered and all(c.status == 200 for c in answered), answered


async def _cosigned_by(w: Witnessed, size: int, names: set[str]) -> bool:
    return names <= await w.cosigners(size)


async def test_a_witness_ahead_of_the_feeder_restarts_it_from_its_size(witnessed: Witnessed) -> None:
    """A 409: witness a cosigned a checkpoint the feeder does not know it cosigned (as after a
    crash between its answer and the store). The feeder starts again from a's size."""
    w = witnessed
    base = await w.grow()
    await until(lambda: _all_three(w, base), f"three cosignatures on {base}")
    await w.stop_feeder()
    ahead = await w.grow()
    signed = await w.stack.pool.fetchval("SELECT note FROM registry.checkpoints WHERE tree_size = $1", ahead)
    async with w.stack.pool.acquire() as conn:
        proof = await with_hashes(conn, lambda read: merkle.consistency_proof(ahead, base, read))
    direct = w.witnesses["a"].add_checkpoint(add_checkpoint_body(base, proof, signed))
    assert direct.status_code == 200, direct.text
    calls_before = len(w.transport.calls)
    w.start_feeder()
    latest = await w.grow()
    await until(lambda: _all_three(w, latest), f"three cosignatures on {latest}")
    a_calls = [c.status for c in w.transport.calls[calls_before:] if c.witness == "a"]
    assert 409 in a_calls and a_calls[-1] == 200, a_calls


async def test_a_split_view_is_refused_by_every_witness_and_raises_the_alarm(witnessed: Witnessed) -> None:
    """The log presents a second checkpoint of a size it checkpointed, with another root: a note
    signed with the log's (development) key, handed to the feeder's own submit, as a log that
    forked would. Every witness refuses it with 422; nothing of it is stored."""
    w = witnessed
    assert w.feeder is not None
    size = await w.grow()
    await until(lambda: _all_three(w, size), f"three cosignatures on {size}")
    signer = load_signer(environment="development", origin="", key_pem="")
    forged = signer.sign(size, bytes(range(32)))
    stored_before = await w.stack.pool.fetch(
        "SELECT tree_size, witness, signature FROM registry.cosignatures"
    )
    before = {n: _alarms(n, "422") for n in NAMES}
    with capture_logs() as logs:
        answers = {n: await w.feeder.submit(n, size, size, forged) for n in NAMES}
    for n in NAMES:
        answer = answers[n]
        assert isinstance(answer, Alarm) and answer.reason == "422", (w.witnesses[n].kind, answer)
        assert _alarms(n, "422") == before[n] + 1
    # Their own answers: litewitness says why, omniwitness only the status.
    assert answers["a"] == answers["b"] == Alarm("422", "bad consistency proof\n")
    assert answers["c"] == Alarm("422", "")
    alarms = [e for e in logs if e["log_level"] == "error" and e.get("status") == "422"]
    assert sorted(e["witness"] for e in alarms) == sorted(NAMES)
    assert all(e["tree_size"] == size for e in alarms)
    stored_after = await w.stack.pool.fetch("SELECT tree_size, witness, signature FROM registry.cosignatures")
    assert sorted(map(tuple, stored_after)) == sorted(map(tuple, stored_before))
    # The served checkpoint is the log's own, with its three cosignatures.
    assert await w.cosigners(size) == set(NAMES)


def _alarms(witness: str, status: str) -> float:
    return (
        REGISTRY.get_sample_value("log_witness_alarms_total", {"witness": witness, "status": status}) or 0.0
    )
