"""The log's side of C2SP tlog-witness (services/transparency/witness_protocol.py): the
add-checkpoint body as the spec lays it out, and each kind of answer read as the spec says."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.transparency import note
from services.transparency.log import CheckpointSigner
from services.transparency.merkle import MemoryTree
from services.transparency.witness_protocol import (
    Alarm,
    Conflict,
    Cosigned,
    Failed,
    WitnessProtocolError,
    add_checkpoint_body,
    add_checkpoint_url,
    read_answer,
)

ORIGIN = "example.test/log"
LOG = CheckpointSigner(ORIGIN, ORIGIN, Ed25519PrivateKey.generate())
WITNESS = note.Cosigner("witness.example/w1", Ed25519PrivateKey.generate())
OTHER = note.Cosigner("witness.example/w2", Ed25519PrivateKey.generate())


def tree(size: int) -> MemoryTree:
    built = MemoryTree()
    built.extend([f"leaf {i}".encode() for i in range(size)])
    return built


def test_the_url_is_the_submission_prefix_and_add_checkpoint() -> None:
    assert add_checkpoint_url("https://w.example/prefix") == "https://w.example/prefix/add-checkpoint"
    assert add_checkpoint_url("https://w.example/prefix/") == "https://w.example/prefix/add-checkpoint"


def test_the_body_is_old_size_proof_lines_blank_line_and_the_signed_checkpoint() -> None:
    t = tree(20)
    signed = LOG.sign(20, t.root())
    proof = t.consistency_proof(13, 20)
    body = add_checkpoint_body(13, proof, signed).decode()
    head, _, rest = body.partition("\n\n")
    lines = head.split("\n")
    assert lines[0] == "old 13"
    assert [base64.b64decode(line) for line in lines[1:]] == proof and len(proof) > 1
    assert rest == signed


def test_a_first_checkpoint_goes_from_old_zero_without_proof() -> None:
    signed = LOG.sign(3, tree(3).root())
    assert add_checkpoint_body(0, [], signed) == f"old 0\n\n{signed}".encode()


@pytest.mark.parametrize(
    ("old", "proof", "why"),
    [
        (-1, [], "non-negative"),
        (0, [bytes(32)], "empty"),
        (5, [bytes(31)], "32 bytes"),
        (5, [bytes(32)] * 64, "at most 63"),
    ],
)
def test_a_body_against_the_spec_is_refused(old: int, proof: list[bytes], why: str) -> None:
    with pytest.raises(WitnessProtocolError, match=why):
        add_checkpoint_body(old, proof, LOG.sign(8, tree(8).root()))


def test_a_body_needs_a_signed_note() -> None:
    with pytest.raises(note.NoteError):
        add_checkpoint_body(0, [], note.Checkpoint(ORIGIN, 1, bytes(32)).body())


def test_a_verified_cosignature_is_kept_and_others_keys_ignored() -> None:
    signed = LOG.sign(5, tree(5).root())
    body = note.parse_note(signed).body
    answer = (WITNESS.cosign(body, 2_000_000_000).line() + OTHER.sign(body)).encode()
    read = read_answer(200, "text/plain", answer, signed, WITNESS.verifier(), not_after=2_000_000_000)
    assert isinstance(read, Cosigned)
    assert [s.name for s in read.signatures] == [WITNESS.name]
    # The line is the witness's cosignature/v1, verified on the checkpoint's body.
    assert note.open_note(body + "\n" + read.signatures[0].line(), [WITNESS.verifier()])
    assert note.cosignature_time(read.signatures[0]) > 0


@pytest.mark.parametrize(
    "answer",
    [
        b"",  # no line at all
        b"not a signature line\n",
        "— witness.example/w1 AAAA\n".encode(),  # too short
        b"another body",  # a line by the witness's key that does not verify
        b"other",  # only another key's line: none of the witness
        b"zero",  # a cosignature/v1 at timestamp 0
        b"future",  # one timestamped after the latest time allowed
        b"plain",  # a plain Ed25519 signature (type 0x01) by the witness's key: not a cosignature
    ],
)
def test_a_200_without_a_verifying_line_of_the_witness_is_an_alarm(answer: bytes) -> None:
    signed = LOG.sign(5, tree(5).root())
    body = note.parse_note(signed).body
    if answer == b"another body":
        answer = WITNESS.sign(note.Checkpoint(ORIGIN, 5, bytes(32)).body()).encode()
    elif answer == b"other":
        answer = OTHER.sign(body).encode()
    elif answer == b"zero":
        answer = WITNESS.cosign(body, 0).line().encode()
    elif answer == b"future":
        answer = WITNESS.cosign(body, 2_000_000_001).line().encode()
    elif answer == b"plain":
        answer = note.Signer(WITNESS.name, WITNESS.private_key).sign(body).encode()
    read = read_answer(200, "text/plain", answer, signed, WITNESS.verifier(), not_after=2_000_000_000)
    assert isinstance(read, Alarm) and read.reason == "bad-cosignature", read


def test_a_409_gives_the_witness_size() -> None:
    signed = LOG.sign(5, tree(5).root())
    assert read_answer(409, "text/x.tlog.size", b"3\n", signed, WITNESS.verifier()) == Conflict(3)
    assert read_answer(
        409, "text/x.tlog.size; charset=utf-8", b"0\n", signed, WITNESS.verifier()
    ) == Conflict(0)


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain", b"3\n"),
        ("text/x.tlog.size", b"03\n"),
        ("text/x.tlog.size", b"3"),
        ("text/x.tlog.size", b""),
    ],
)
def test_a_409_against_the_spec_is_an_alarm(content_type: str, body: bytes) -> None:
    read = read_answer(409, content_type, body, LOG.sign(5, tree(5).root()), WITNESS.verifier())
    assert isinstance(read, Alarm) and read.reason == "bad-size"


@pytest.mark.parametrize("status", [400, 403, 404, 422])
def test_a_refusal_is_an_alarm_quoting_the_answer(status: int) -> None:
    read = read_answer(status, "text/plain", b"bad consistency proof\n" + b"x" * 500, "", WITNESS.verifier())
    assert isinstance(read, Alarm) and read.reason == str(status)
    assert read.excerpt.startswith("bad consistency proof") and len(read.excerpt) == 200


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_other_answers_are_failures_to_retry(status: int) -> None:
    assert read_answer(status, "", b"busy", "", WITNESS.verifier()) == Failed(status, "busy")


async def test_a_signed_checkpoint_nudges_the_feeder_before_it_is_published() -> None:
    import asyncio
    from typing import cast

    import asyncpg

    from services.registry.adapters.witness_feeder import WitnessFeeder, _first_of
    from services.registry.entrypoints.relay_main import nudging

    feeder = WitnessFeeder(cast(asyncpg.Pool, None), [])
    seen: list[bool] = []

    async def publish(size: int, signed: str) -> None:
        seen.append(feeder.checkpointed.is_set())

    await nudging(feeder, publish)(3, "note")
    assert seen == [True]
    feeder.checkpointed.clear()
    await nudging(feeder, None)(4, "note")
    assert feeder.checkpointed.is_set()
    # The feeder's wait ends on the nudge, long before its poll (bounded: a failure, not a hang).
    never = asyncio.Event()
    await asyncio.wait_for(_first_of(never, feeder.checkpointed, timeout=3600), 10)
    await feeder.aclose()
