"""C2SP tlog-policy files: reading them, and applying the quorum to cosigned checkpoints."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.transparency import note
from services.transparency.log import DEV_LOG_KEY_SEED, DEV_LOG_ORIGIN
from services.transparency.policy import PolicyError, parse_policy

LOG = note.Signer(DEV_LOG_ORIGIN, Ed25519PrivateKey.from_private_bytes(DEV_LOG_KEY_SEED))
WITNESSES = {
    name: note.Cosigner(
        f"witness.{name}.example.gov.vn", Ed25519PrivateKey.from_private_bytes(bytes([n]) * 32)
    )
    for n, name in enumerate(["a", "b", "c", "d"], 1)
}
BODY = note.Checkpoint(DEV_LOG_ORIGIN, 7, bytes(32)).body()


def vkey(name: str) -> str:
    return WITNESSES[name].verifier().key()


def two_of_three(extra: str = "") -> str:
    return (
        f"# the development log\nlog {LOG.verifier().key()} https://registry.example.gov.vn/v1/log\n\n"
        f"witness a {vkey('a')} https://witness-a.example.gov.vn\n"
        f"\twitness  b\t{vkey('b')}\n"
        f"witness c {vkey('c')} http://127.0.0.1:9000/\n"
        "group three 2 a b c\n"
        f"{extra}quorum three\n"
    )


def cosigned(*names: str) -> str:
    text = note.sign_note(BODY, [LOG])
    for name in names:
        text = note.add_signature(text, WITNESSES[name])
    return text


def test_two_of_three() -> None:
    policy = parse_policy(two_of_three())
    assert [w.name for w in policy.witnesses] == ["a", "b", "c"]
    assert policy.witness("a") is not None and policy.witness("a").url == "https://witness-a.example.gov.vn"  # type: ignore[union-attr]
    assert policy.witness("b").url is None  # type: ignore[union-attr]
    assert policy.required() == "2 of (a, b, c)"
    assert not policy.quorum_met(policy.cosigners(cosigned()))
    assert not policy.quorum_met(policy.cosigners(cosigned("a")))
    assert policy.cosigners(cosigned("c", "a")) == ["a", "c"]
    assert policy.quorum_met(policy.cosigners(cosigned("c", "a")))
    # A witness the policy does not name does not count.
    assert not policy.quorum_met(policy.cosigners(cosigned("a", "d")))


def test_nested_groups_any_all_and_none() -> None:
    text = two_of_three(f"witness d {vkey('d')}\ngroup one any d\ngroup both all three one\n").replace(
        "quorum three", "quorum both"
    )
    policy = parse_policy(text)
    assert not policy.quorum_met({"a", "b"})
    assert policy.quorum_met({"a", "b", "d"})
    assert parse_policy(f"log {LOG.verifier().key()}\nquorum none\n").quorum_met(set())
    assert parse_policy(two_of_three().replace("quorum three", "quorum a")).quorum_met({"a"})


def test_a_note_not_signed_by_a_listed_log_is_refused() -> None:
    policy = parse_policy(two_of_three())
    other = note.Signer("other.example/log", Ed25519PrivateKey.from_private_bytes(bytes(32)))
    text = note.add_signature(note.sign_note(BODY, [other]), WITNESSES["a"])
    with pytest.raises(note.NoteError, match="no signature of a log"):
        policy.cosigners(text)


def test_a_bad_cosignature_by_a_known_witness_rejects_the_note() -> None:
    opened = note.parse_note(cosigned("a", "b"))
    last = opened.signatures[-1]
    flipped = note.Signature(last.name, last.key_id, last.signature[:-1] + bytes([last.signature[-1] ^ 1]))
    text = note.SignedNote(opened.body, [*opened.signatures[:-1], flipped]).format()
    with pytest.raises(note.NoteError, match="does not verify"):
        parse_policy(two_of_three()).cosigners(text)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.replace("quorum three\n", ""), "needs a quorum"),
        (lambda t: t + "quorum a\n", "exactly one quorum"),
        (lambda t: t.replace("group three 2", "group three 4"), "needs 1"),
        (lambda t: t.replace("group three 2", "group three 0"), "needs 1"),
        (lambda t: t.replace("group three 2", "group three 02"), "decimal"),
        (lambda t: t.replace("group three 2 a b c", "group three 2 a b a"), "listed twice"),
        (lambda t: t.replace("group three 2 a b c", "group three 2 a b z"), "not a witness or group"),
        (lambda t: t.replace("group three 2 a b c", "group three any a none"), "not a witness or group"),
        (lambda t: t.replace("quorum three", "quorum zz"), "not a witness or group"),
        (lambda t: t.replace("witness c", "witness a"), "taken"),
        (lambda t: t.replace("witness c", "witness none"), "reserved"),
        (lambda t: t + f"witness e {vkey('a')}\n", "listed twice"),
        (lambda t: t + f"witness e {LOG.verifier().key()}\n", "not a cosignature key"),
        (lambda t: t + f"log {vkey('a')}\n", "not a log key"),
        (lambda t: t + f"log {LOG.verifier().key()}\n", "listed twice"),
        (lambda t: t + "witness e\n", "witness <name>"),
        (lambda t: t + "monitor x\n", "unknown keyword"),
        (lambda t: t + "witness e x+1+2\n", "line"),
        (lambda t: t + "# a\x01comment\n", "control character"),
        (lambda t: t.replace("https://witness-a.example.gov.vn", "ftp://w"), "http"),
    ],
)
def test_refusals_name_the_problem(change: object, message: str) -> None:
    assert callable(change)
    with pytest.raises(PolicyError, match=message):
        parse_policy(change(two_of_three()))


def test_bytes_must_be_utf8() -> None:
    with pytest.raises(PolicyError, match="UTF-8"):
        parse_policy(b"quorum \xff\n")
    assert parse_policy(two_of_three().encode()).quorum == "three"
