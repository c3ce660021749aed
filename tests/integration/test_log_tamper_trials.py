"""The transparency log against tampering, as the database superuser could tamper: every trial
must be detected and located by the audit tool's `prove`, `verify` and `witness`.

One log is built over HTTP on the real store (agreements and reports signed, the tree
integrated, checkpoints signed); a witness (in process, `services.audit.witness`) cosigns it on
first use and again after a consistency proof. Then, trial by trial:

- a modified event (its envelope rewritten, with its hash left or recomputed): `prove` against
  the witnessed checkpoint fails naming the event and its leaf; `verify` reports the leaf
  mismatch at that leaf index;
- a forged checkpoint of the witnessed size over another root, signed with the log's key: the
  witness refuses it (split view) and keeps both notes as evidence;
- an event appended later: `prove` against the witnessed checkpoint fails, the event being a
  leaf at or above the witnessed size (the registry answers 422 not-in-that-tree);
- a log rolled back (its tail deleted and a smaller checkpoint signed), then regrown to the
  witnessed size with other events, then beyond it: the witness refuses each (rollback, split
  view, failed consistency proof), writes evidence with both notes, and keeps its state.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from coordreg_contracts.envelope import canonical_json, envelope_hash
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.audit.logapi import LogApi, open_checkpoint
from services.audit.prove import ProofReport, check_consistency, prove
from services.audit.settings import DEV_LOG_VERIFIER_KEY, AuditSettings
from services.audit.verify import verify
from services.audit.witness import (
    COSIGNED,
    FIRST_USE,
    INCONSISTENT,
    ROLLBACK,
    SPLIT_VIEW,
    STATE_FILE,
    WitnessReport,
    witness,
)
from services.transparency import merkle, note
from services.transparency.log import load_signer
from tests.support.audit_cli import run_audit
from tests.support.builders import report_body
from tests.support.kafka import Brokers
from tests.support.log import integrate, write
from tests.support.stack import Stack, running_stack

LOG_KEY = note.parse_verifier_key(DEV_LOG_VERIFIER_KEY)  # the stack signs with the development key
LOG_SIGNER = load_signer(environment="development", origin="", key_pem="")
WITNESS_PRIVATE = Ed25519PrivateKey.generate()
WITNESS = note.Signer("witness.test/agency-1", WITNESS_PRIVATE)


@pytest.fixture
async def log_stack(database_url: str, kafka: Brokers, topic: str) -> AsyncIterator[Stack]:
    options = {"log_witness_keys": WITNESS.verifier().key()}
    async with running_stack(
        database_url, kafka, topic, relay=False, projections=False, registry_options=options
    ) as stack:
        yield stack


async def sign_checkpoint(stack: Stack) -> str:
    response = await stack.registry.post("/v1/log/checkpoints")
    assert response.status_code == 201, response.text
    return response.text


async def leaves(stack: Stack, end: int) -> list[dict[str, Any]]:
    response = await stack.registry.get("/v1/log/leaves", params={"start": 0, "end": end})
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["leaves"]
    return found


def api_for(stack: Stack) -> LogApi:
    return LogApi(stack.registry_url, stack.token())


async def run_witness(stack: Stack, state: Path, note_file: Path | None = None) -> WitnessReport:
    return await witness(
        log_key=LOG_KEY,
        signer=WITNESS,
        state_dir=state,
        registry=stack.registry_url,
        token=stack.token(),
        note_file=note_file,
    )


async def superuser(stack: Stack) -> asyncpg.Connection:
    conn = await asyncpg.connect(stack.database_url)
    assert await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    return conn


def altered(envelope_text: str, *, rehash: bool) -> str:
    """The envelope with one value of its data changed; its hash kept, or recomputed (as a forger
    would, to keep the event's own hash check quiet)."""
    doc = json.loads(envelope_text)
    data = dict(doc["data"])
    for name in ("title", "summary", "reason"):
        if isinstance(data.get(name), str):
            data[name] = data[name] + " (đã sửa)"
            break
    else:
        data["completion_percent"] = (int(data.get("completion_percent") or 0) + 35) % 101
    doc["data"] = data
    if rehash:
        doc["hash"] = envelope_hash(doc)
    return canonical_json(doc).decode()


async def rewrite_envelope(conn: asyncpg.Connection, position: int, text: str) -> None:
    await conn.execute("ALTER TABLE registry.events DISABLE TRIGGER USER")
    try:
        await conn.execute("UPDATE registry.events SET envelope = $1 WHERE position = $2", text, position)
    finally:
        await conn.execute("ALTER TABLE registry.events ENABLE TRIGGER USER")


def evidence_of(report: WitnessReport) -> dict[str, Any]:
    assert report.evidence_path, report.summary()
    loaded: dict[str, Any] = json.loads(Path(report.evidence_path).read_text(encoding="utf-8"))
    return loaded


def failed(report: ProofReport, check: str) -> bool:
    return any(c.name == check and not c.ok for c in report.checks)


async def test_every_log_tampering_is_detected_and_located(log_stack: Stack, tmp_path: Path) -> None:
    stack = log_stack
    state = tmp_path / "witness"
    settings = AuditSettings(database_url=stack.database_url, progress_seconds=0)

    # --- an honest log, witnessed twice (first use, then after a consistency proof) ------
    await write(stack, agreements=3, reports=3)
    await integrate(stack.pool)
    await sign_checkpoint(stack)
    first = await run_witness(stack, state)
    assert first.outcome == FIRST_USE and first.submit_status == 201, first.summary()
    assert "trusting this one on first use" in first.summary()
    await write(stack, agreements=2, reports=2)
    await integrate(stack.pool)
    await sign_checkpoint(stack)
    second = await run_witness(stack, state)
    assert second.outcome == COSIGNED and second.proof_hashes > 0, second.summary()
    assert second.submit_status == 201, second.summary()
    witnessed_text = json.loads((state / STATE_FILE).read_text(encoding="utf-8"))["note"]
    witnessed = open_checkpoint(witnessed_text, LOG_KEY)
    size = witnessed.size
    assert size == await stack.pool.fetchval("SELECT count(*) FROM registry.events") >= 3 * 4 + 2 * 3
    # The registry serves the checkpoint with the witness's cosignature, and both verify.
    served = (await stack.registry.get("/v1/log/checkpoint")).text
    _, signers = note.open_note(served, [LOG_KEY, WITNESS.verifier()])
    assert sorted(s.name for s in signers) == sorted([LOG_KEY.name, WITNESS.name])
    # Nothing the witness refused so far, and the first checkpoint extends into the second.
    assert not list(state.glob("evidence-*"))

    honest_leaves = await leaves(stack, size)
    sizes, seconds = [], []
    async with api_for(stack) as api:
        for leaf in honest_leaves:
            proven = await prove(leaf["event_id"], checkpoint_text=witnessed_text, log_key=LOG_KEY, api=api)
            assert proven.ok, proven.summary()
            sizes.append(proven.proof_hashes)
            seconds.append(proven.verify_seconds)
    print(
        f"\nhonest: {len(honest_leaves)} events proven in tree size {size}; inclusion proofs of"
        f" {min(sizes)}..{max(sizes)} hashes, verified in {statistics.median(seconds) * 1e6:.0f} µs (median)"
    )
    clean = await verify(settings, skip_kafka=True)
    assert clean.ok, clean.summary()
    assert clean.tree.leaves == size and clean.tree.latest_size == size and clean.tree.checkpoints == 2

    tally: dict[str, list[int]] = {}  # trial kind → [trials, detected, located]

    def count(kind: str, detected: bool, located: bool) -> None:
        row = tally.setdefault(kind, [0, 0, 0])
        row[0] += 1
        row[1] += int(detected)
        row[2] += int(detected and located)

    conn = await superuser(stack)
    try:
        # --- 1. a modified event -------------------------------------------------------
        for trial, index in enumerate(sorted({0, 1, size // 2, size - 2, size - 1})):
            leaf = honest_leaves[index]
            original = await conn.fetchval(
                "SELECT envelope FROM registry.events WHERE position = $1", leaf["position"]
            )
            await rewrite_envelope(conn, leaf["position"], altered(original, rehash=trial % 2 == 1))
            try:
                async with api_for(stack) as api:
                    proven = await prove(
                        leaf["event_id"], checkpoint_text=witnessed_text, log_key=LOG_KEY, api=api
                    )
                count(
                    "modified event: prove",
                    not proven.ok,
                    failed(proven, "inclusion")
                    and proven.subject
                    == {"event_id": leaf["event_id"], "leaf_index": index, "tree_size": size},
                )
                assert f"leaf_index {index}".replace("_", " ") in proven.summary().splitlines()[-1]
                found = await verify(settings, skip_kafka=True)
                at_leaf = [p for p in found.problems if p.source == "tree" and p.check == "leaf"]
                count(
                    "modified event: verify",
                    not found.ok,
                    len(at_leaf) == 1
                    and at_leaf[0].leaf_index == index
                    and at_leaf[0].position == leaf["position"]
                    and f"leaf {index}:" in at_leaf[0].detail,
                )
                assert any(p.check == "recomputed-root" for p in found.tree.problems)
            finally:
                await rewrite_envelope(conn, leaf["position"], original)
        assert (await verify(settings, skip_kafka=True)).ok

        # --- 2. a split view: another root for the witnessed size, signed by the log's key --
        before = (state / STATE_FILE).read_bytes()
        for k in range(3):
            forged = LOG_SIGNER.sign(size, hashlib.sha256(b"another history %d" % k).digest())
            path = tmp_path / f"forged-{k}.note"
            path.write_text(forged, encoding="utf-8")
            refused = await run_witness(stack, state, note_file=path)
            evidence = evidence_of(refused)
            count(
                "split view (forged note)",
                refused.refused and refused.violation == SPLIT_VIEW,
                evidence["kind"] == SPLIT_VIEW
                and evidence["old_note"] == witnessed_text
                and evidence["new_note"] == forged
                and evidence["old"]["tree_size"] == evidence["new"]["tree_size"] == size,
            )
            assert (state / STATE_FILE).read_bytes() == before

        # --- 3. an event appended later, presented as witnessed -------------------------
        subjects = [
            subject
            for subject in dict.fromkeys(json.loads(leaf["record"])["subject"] for leaf in honest_leaves)
            if not subject.startswith("party/")
        ]
        for subject in subjects[:3]:
            response = await stack.registry.post(
                f"/v1/agreements/{subject}/progress-reports", json=report_body(period="2027")
            )
            assert response.status_code == 201, response.text
        await integrate(stack.pool)
        await sign_checkpoint(stack)
        new_leaves = (await leaves(stack, size + 3))[size:]
        async with api_for(stack) as api:
            for leaf in new_leaves:
                proven = await prove(
                    leaf["event_id"], checkpoint_text=witnessed_text, log_key=LOG_KEY, api=api
                )
                count(
                    "append presented as old: prove",
                    not proven.ok and failed(proven, "in-tree"),
                    proven.subject["event_id"] == leaf["event_id"]
                    and proven.subject["leaf_index"] == leaf["leaf_index"] >= size
                    and f"tree size {size}" in proven.summary(),
                )

        # --- 4. a rolled-back log, regrown to the witnessed size, then beyond ------------
        keep = size - 3
        await conn.execute("SET session_replication_role = replica")  # triggers off, as the superuser
        try:
            gone = [
                r["position"]
                for r in await conn.fetch(
                    "SELECT position FROM registry.tree_leaves WHERE leaf_index >= $1", keep
                )
            ]
            await conn.execute("DELETE FROM registry.events WHERE position = ANY($1::bigint[])", gone)
            await conn.execute("DELETE FROM registry.tree_leaves WHERE leaf_index >= $1", keep)
            await conn.execute(
                "DELETE FROM registry.tree_hashes WHERE hash_index >= $1", merkle.stored_hash_count(keep)
            )
            await conn.execute("DELETE FROM registry.cosignatures WHERE tree_size > $1", keep)
            await conn.execute("DELETE FROM registry.checkpoints WHERE tree_size > $1", keep)
        finally:
            await conn.execute("SET session_replication_role = origin")
        rolled_back = await sign_checkpoint(stack)
        assert open_checkpoint(rolled_back, LOG_KEY).size == keep

        async def refused_with(kind: str, new_size: int) -> None:
            before = (state / STATE_FILE).read_bytes()
            refused = await run_witness(stack, state)
            evidence = evidence_of(refused) if refused.refused else {}
            count(
                f"rolled back log: witness ({kind})",
                refused.refused and refused.violation == kind,
                evidence.get("old_note") == witnessed_text
                and evidence.get("new", {}).get("tree_size") == new_size
                and bool(evidence.get("new_note"))
                and (kind != INCONSISTENT or bool(evidence.get("proof", {}).get("hashes"))),
            )
            assert (state / STATE_FILE).read_bytes() == before
            assert refused.submit_status is None  # nothing handed in

        await refused_with(ROLLBACK, keep)
        async with api_for(stack) as api:
            checked = await check_consistency(
                old_text=witnessed_text, new_text=rolled_back, log_key=LOG_KEY, api=api
            )
        count("rolled back log: check-consistency", not checked.ok and failed(checked, "rollback"), True)
        await write(stack, agreements=1, reports=2)  # 3 other events: the witnessed size again
        await integrate(stack.pool)
        assert open_checkpoint(await sign_checkpoint(stack), LOG_KEY).size == size
        await refused_with(SPLIT_VIEW, size)
        await write(stack, agreements=1, reports=1)
        await integrate(stack.pool)
        await sign_checkpoint(stack)
        await refused_with(INCONSISTENT, size + 2)
    finally:
        await conn.close()

    print("trial                                        trials detected located")
    for kind, (trials, detected, located) in tally.items():
        print(f"{kind:<44} {trials:>6} {detected:>8} {located:>7}")
    assert all(row[0] == row[1] == row[2] for row in tally.values()), tally
    assert sum(row[0] for row in tally.values()) >= 20


async def test_the_cli_witnesses_proves_and_refuses(log_stack: Stack, tmp_path: Path) -> None:
    """The same through `coordreg-audit`, as a partner agency runs it: exit codes and output."""
    stack = log_stack
    env = {"AUDIT_REGISTRY_URL": stack.registry_url, "AUDIT_REGISTRY_TOKEN": stack.token()}
    code, out, err = await run_audit(
        "witness-key", "witness.test/cli", "--out", str(tmp_path / "w.key"), env=env
    )
    assert code == 0, out + err
    # A new witness key signs cosignature/v1 (type 0x04).
    made = note.parse_witness_key(out.strip())
    assert isinstance(made, note.CosignatureVerifier)
    assert made == note.parse_signer_key((tmp_path / "w.key").read_text(encoding="utf-8")).verifier()
    assert (tmp_path / "w.key").stat().st_mode & 0o777 == 0o600
    code, _, err = await run_audit(
        "witness-key", "witness.test/cli", "--out", str(tmp_path / "w.key"), env=env
    )
    assert code == 2 and "refusing to overwrite" in err
    # The registry accepts only its configured witness, of before cosignature/v1 (type 0x01,
    # accepted until the date in docs/CONTRACT.md B11): use that key.
    key_file = tmp_path / "agency.key"
    key_file.write_text(note.signer_key(WITNESS.name, WITNESS_PRIVATE) + "\n", encoding="utf-8")
    witness_args = ("witness", "--key", str(key_file), "--state", str(tmp_path / "state"))

    ids = await write(stack, agreements=2, reports=1)
    await integrate(stack.pool)
    old_note = await sign_checkpoint(stack)
    code, out, err = await run_audit(*witness_args, "--log-key", LOG_KEY.key(), env=env)
    assert code == 0, out + err
    assert "first use" in out and "accepted the cosignature: 201" in out
    await write(stack, agreements=1, reports=1)
    await integrate(stack.pool)
    new_note = await sign_checkpoint(stack)
    report = tmp_path / "witness.json"
    code, out, err = await run_audit(
        *witness_args, "--log-key", LOG_KEY.key(), "--json", str(report), env=env
    )
    assert code == 0, out + err
    assert json.loads(report.read_text(encoding="utf-8"))["outcome"] == COSIGNED
    (tmp_path / "old.note").write_text(old_note, encoding="utf-8")
    (tmp_path / "new.note").write_text(new_note, encoding="utf-8")
    (tmp_path / "log.pub").write_text(LOG_KEY.key() + "\n", encoding="utf-8")

    event = await stack.pool.fetchval(
        "SELECT event_id::text FROM registry.events WHERE agreement_id = $1 ORDER BY sequence LIMIT 1", ids[0]
    )
    prove_args = ("prove", event, "--checkpoint", str(tmp_path / "new.note"))
    code, out, err = await run_audit(*prove_args, "--log-key", str(tmp_path / "log.pub"), env=env)
    assert code == 0 and "PROVEN" in out, out + err
    code, out, err = await run_audit(
        "check-consistency", "--old", str(tmp_path / "old.note"), "--new", str(tmp_path / "new.note"),
        "--log-key", LOG_KEY.key(), env=env,
    )  # fmt: skip
    assert code == 0 and "PROVEN" in out, out + err
    # Another log key: nothing verifies (exit 1), and the witness refuses (exit 1, evidence).
    other = note.Signer(LOG_KEY.name, Ed25519PrivateKey.generate()).verifier().key()
    code, out, err = await run_audit(*prove_args, "--log-key", other, env=env)
    assert code == 1 and "NOT PROVEN: [checkpoint]" in out, out + err
    forged = tmp_path / "forged.note"
    forged.write_text(LOG_SIGNER.sign(3, hashlib.sha256(b"x").digest()), encoding="utf-8")
    code, out, err = await run_audit(
        *witness_args, "--log-key", LOG_KEY.key(), "--note", str(forged), env=env
    )
    assert code == 1 and "REFUSED (rollback)" in out, out + err
    assert len(list((tmp_path / "state").glob("evidence-*-rollback.json"))) == 1
    # No log key: bad usage.
    code, _, err = await run_audit(*witness_args, env=env)
    assert code == 2 and "--log-key" in err
