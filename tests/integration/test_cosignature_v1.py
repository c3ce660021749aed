"""cosignature/v1 and the witnessing policy on the real store (docs/CONTRACT.md B11): the registry
accepts timestamped cosignatures of its policy's witnesses, serves them with the checkpoint and
says whether the quorum is met; `coordreg-audit witness` signs cosignature/v1; `prove --policy`
refuses a checkpoint below the quorum; `verify` checks every stored cosignature and finds one
changed behind the registry's back. The standard witnesses (litewitness, omniwitness) and the
relay's feeder are tested in tests/e2e/test_standard_witnesses.py."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.audit.logapi import LogApi
from services.audit.prove import prove
from services.audit.settings import DEV_LOG_VERIFIER_KEY, AuditSettings
from services.audit.verify import verify
from services.audit.witness import witness
from services.transparency import note
from services.transparency.policy import parse_policy
from tests.support.audit_cli import run_audit
from tests.support.kafka import Brokers
from tests.support.log import integrate, write
from tests.support.stack import Stack, running_stack

LOG_KEY = note.parse_verifier_key(DEV_LOG_VERIFIER_KEY)
COSIGNERS = {
    name: note.Cosigner(f"witness.{name}.test", Ed25519PrivateKey.generate()) for name in ("a", "b", "c")
}
LEGACY = note.Signer("witness.legacy.test", Ed25519PrivateKey.generate())
POLICY = (
    f"log {DEV_LOG_VERIFIER_KEY}\n"
    + "".join(f"witness {name} {c.verifier().key()}\n" for name, c in COSIGNERS.items())
    + "group three 2 a b c\nquorum three\n"
)


@pytest.fixture
async def log_stack(database_url: str, kafka: Brokers, topic: str) -> AsyncIterator[Stack]:
    options = {"log_policy": POLICY, "log_witness_keys": LEGACY.verifier().key()}
    async with running_stack(
        database_url, kafka, topic, relay=False, projections=False, registry_options=options
    ) as stack:
        yield stack


async def cosign_as(stack: Stack, signer: note.Signer, state: Path) -> None:
    done = await witness(
        log_key=LOG_KEY, signer=signer, state_dir=state, registry=stack.registry_url, token=stack.token()
    )
    assert done.submit_status == 201, done.summary()


async def served(stack: Stack) -> tuple[str, str | None]:
    answer = await stack.registry.get("/v1/log/checkpoint")
    assert answer.status_code == 200, answer.text
    return answer.text, answer.headers.get("witness-quorum")


async def test_cosignatures_v1_make_the_quorum_and_verify_checks_each(
    log_stack: Stack, tmp_path: Path
) -> None:
    stack = log_stack
    await write(stack, agreements=2, reports=2)
    await integrate(stack.pool)
    assert (await stack.registry.post("/v1/log/checkpoints")).status_code == 201

    keys = (await stack.registry.get("/v1/log/keys")).json()
    assert keys["policy"] == POLICY and keys["legacy_cosignatures_until"] == "2027-06-30"
    assert {c.verifier().key() for c in COSIGNERS.values()} | {LEGACY.verifier().key()} == set(
        keys["witness_verifier_keys"]
    )

    text, quorum = await served(stack)
    assert quorum == "not-met"
    # One witness of three: below the quorum, and `prove --policy` refuses the checkpoint.
    await cosign_as(stack, COSIGNERS["a"], tmp_path / "a")
    text, quorum = await served(stack)
    assert quorum == "not-met"
    event_id = str(
        await stack.pool.fetchval("SELECT event_id FROM registry.events ORDER BY position LIMIT 1")
    )
    policy = parse_policy(POLICY)
    async with LogApi(stack.registry_url, stack.token()) as api:
        below = await prove(event_id, checkpoint_text=text, log_key=LOG_KEY, api=api, policy=policy)
        assert not below.ok and below.failed is not None and below.failed.name == "quorum", below.summary()
        assert "2 of (a, b, c)" in below.failed.detail
        # The legacy witness's plain signature does not count for the policy, but is stored.
        await cosign_as(stack, LEGACY, tmp_path / "legacy")
        assert (await served(stack))[1] == "not-met"
        await cosign_as(stack, COSIGNERS["c"], tmp_path / "c")
        text, quorum = await served(stack)
        assert quorum == "met"
        proven = await prove(event_id, checkpoint_text=text, log_key=LOG_KEY, api=api, policy=policy)
        assert proven.ok, proven.summary()

    # Every line served verifies: the timestamps are the witnesses' clocks, now.
    opened, verified = note.open_note(text, [LOG_KEY, *(c.verifier() for c in COSIGNERS.values())])
    stamps = [note.cosignature_time(s) for s in verified if s.name != LOG_KEY.name]
    assert len(stamps) == 2 and all(abs(t - time.time()) < 120 for t in stamps)
    assert policy.cosigners(text) == ["a", "c"]

    witnesses = " ".join([*(c.verifier().key() for c in COSIGNERS.values()), LEGACY.verifier().key()])
    settings = AuditSettings(database_url=stack.database_url, progress_seconds=0, log_witness_keys=witnesses)
    clean = await verify(settings, skip_kafka=True)
    assert clean.ok and clean.tree.cosignatures == 3 and clean.tree.cosignatures_checked, clean.summary()
    unchecked = await verify(settings.model_copy(update={"log_witness_keys": ""}), skip_kafka=True)
    assert "3 cosignatures NOT checked" in unchecked.tree.summary_line()

    # A cosignature changed behind the registry's back (as the superuser): verify names it.
    conn = await asyncpg.connect(stack.database_url)
    try:
        row = await conn.fetchrow(
            "SELECT tree_size, signature FROM registry.cosignatures WHERE witness = $1", "witness.c.test"
        )
        assert row is not None
        line = str(row["signature"])
        sig = note.parse_note(opened.body + "\n" + line).signatures[0]
        moved = note.Signature(
            sig.name, sig.key_id, (note.cosignature_time(sig) + 1).to_bytes(8, "big") + sig.signature[8:]
        )
        await conn.execute("SET session_replication_role = replica")
        await conn.execute(
            "UPDATE registry.cosignatures SET signature = $1 WHERE witness = $2",
            moved.line(),
            "witness.c.test",
        )
        await conn.execute("SET session_replication_role = origin")
        found = await verify(settings, skip_kafka=True)
        bad = [p for p in found.tree.problems if p.check == "cosignature"]
        assert len(bad) == 1 and "witness.c.test" in bad[0].detail and bad[0].tree_size == row["tree_size"], (
            found.summary()
        )
    finally:
        await conn.close()


async def test_refused_cosignatures_change_nothing(log_stack: Stack) -> None:
    stack = log_stack
    await write(stack, agreements=1, reports=1)
    await integrate(stack.pool)
    signed = (await stack.registry.post("/v1/log/checkpoints")).text
    body = note.parse_note(signed).body

    async def hand_in(text: str) -> int:
        answer = await stack.registry.post(
            "/v1/log/cosignatures", content=text, headers={"content-type": "text/plain"}
        )
        assert answer.headers["content-type"].startswith(("application/problem+json", "application/json"))
        return answer.status_code

    a = COSIGNERS["a"]
    # Timestamped an hour ahead of the registry's clock.
    ahead = note.SignedNote(
        body, [*note.parse_note(signed).signatures, a.cosign(body, int(time.time()) + 3600)]
    )
    assert await hand_in(ahead.format()) == 422
    # A witness no one configured, signing cosignature/v1.
    stranger = note.Cosigner("witness.stranger.test", Ed25519PrivateKey.generate())
    assert await hand_in(note.add_signature(signed, stranger)) == 422
    # A cosignature/v1 line whose signature is the type 0x01 one of the same key: refused.
    plain = note.Signer(a.name, a.private_key).signature(body)
    as_v1 = note.Signature(a.name, a.key_id, plain.signature)
    assert await hand_in(note.SignedNote(body, [*note.parse_note(signed).signatures, as_v1]).format()) == 422
    assert await stack.pool.fetchval("SELECT count(*) FROM registry.cosignatures") == 0
    # And one that is right is taken.
    assert await hand_in(note.add_signature(signed, a)) == 201
    assert await stack.pool.fetchval("SELECT count(*) FROM registry.cosignatures") == 1


async def test_the_cli_proves_with_a_policy_and_refuses_below_it(log_stack: Stack, tmp_path: Path) -> None:
    stack = log_stack
    env = {"AUDIT_REGISTRY_URL": stack.registry_url, "AUDIT_REGISTRY_TOKEN": stack.token()}
    await write(stack, agreements=1, reports=1)
    await integrate(stack.pool)
    assert (await stack.registry.post("/v1/log/checkpoints")).status_code == 201
    key_file = tmp_path / "b.key"
    b = COSIGNERS["b"]
    key_file.write_text(
        note.signer_key(b.name, b.private_key, note.ALG_COSIGNATURE_V1) + "\n", encoding="utf-8"
    )
    code, out, err = await run_audit(
        "witness", "--key", str(key_file), "--state", str(tmp_path / "b"), "--log-key", LOG_KEY.key(), env=env
    )
    assert code == 0 and "accepted the cosignature: 201" in out, out + err
    (tmp_path / "policy").write_text(POLICY, encoding="utf-8")
    (tmp_path / "checkpoint").write_text((await served(stack))[0], encoding="utf-8")
    event = str(await stack.pool.fetchval("SELECT event_id FROM registry.events ORDER BY position LIMIT 1"))
    args = ("prove", event, "--checkpoint", str(tmp_path / "checkpoint"), "--log-key", LOG_KEY.key())
    code, out, err = await run_audit(*args, "--policy", str(tmp_path / "policy"), env=env)
    assert code == 1 and "NOT PROVEN: [quorum]" in out and "cosigned by b" in out, out + err
    code, out, err = await run_audit(*args, env=env)
    assert code == 0 and "PROVEN" in out, out + err
    (tmp_path / "bad-policy").write_text("quorum nobody\n", encoding="utf-8")
    code, _, err = await run_audit(*args, "--policy", str(tmp_path / "bad-policy"), env=env)
    assert code == 2 and "--policy" in err, err
