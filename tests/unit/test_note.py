"""C2SP signed notes and tlog checkpoints (services/transparency/note.py), pure.

The known answers are the public example of Go's golang.org/x/mod/sumdb/note (its
PeterNeumann key and signature); Go itself verifies our notes in
tests/integration/test_tlog_go_reference.py.
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from services.transparency import note
from services.transparency.note import (
    Checkpoint,
    NoteError,
    Signature,
    SignedNote,
    Signer,
    Verifier,
    add_signature,
    key_id,
    open_note,
    parse_note,
    parse_signer_key,
    parse_verifier_key,
    sign_note,
    signer_key,
    verifier_key,
)

GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
)
GO_SIG = "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"

ORIGIN = "registry.example/tlog"
LOG = Signer(ORIGIN, Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"log key").digest()))
WITNESS = Signer("witness.example/w1", Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"w1").digest()))
OTHER = Signer(ORIGIN, Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"another key").digest()))
ROOT = hashlib.sha256(b"some root").digest()


def checkpoint_note(size: int = 42, signers: tuple[Signer, ...] = (LOG,)) -> str:
    return sign_note(Checkpoint(ORIGIN, size, ROOT).body(), list(signers))


# --- keys: Go's known answers ----------------------------------------------------------


def test_go_example_key_and_signature() -> None:
    signer = parse_signer_key(GO_SKEY)
    assert signer.name == "PeterNeumann"
    assert signer.key_id == 0xC74F20A3
    assert signer.sign(GO_TEXT) == GO_SIG
    assert signer.verifier().key() == GO_VKEY
    assert signer_key(signer.name, signer.private_key) == GO_SKEY
    assert verifier_key(signer.name, signer.public_key) == GO_VKEY
    verifier = parse_verifier_key(GO_VKEY)
    assert verifier == signer.verifier()
    assert sign_note(GO_TEXT, [signer]) == GO_TEXT + "\n" + GO_SIG
    opened, verified = open_note(GO_TEXT + "\n" + GO_SIG, [verifier])
    assert opened.body == GO_TEXT
    assert [(s.name, s.key_id) for s in verified] == [("PeterNeumann", 0xC74F20A3)]


def test_key_id_is_the_spec_formula() -> None:
    public = LOG.public_key.public_bytes_raw()
    digest = hashlib.sha256(ORIGIN.encode() + b"\n\x01" + public).digest()
    assert key_id(ORIGIN, public) == int.from_bytes(digest[:4], "big") == LOG.key_id
    name, hex_id, encoded = LOG.verifier().key().split("+", 2)
    assert (name, int(hex_id, 16), base64.b64decode(encoded)) == (ORIGIN, LOG.key_id, b"\x01" + public)


@pytest.mark.parametrize(
    "text",
    [
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong ID
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",  # bad base64
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",  # length
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # algorithm
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # space
        "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # no name
        "PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # 7 hex digits
        "PeterNeumann",
    ],
)
def test_bad_verifier_keys_are_refused(text: str) -> None:
    with pytest.raises(NoteError):
        parse_verifier_key(text)


def test_bad_signer_keys_are_refused() -> None:
    with pytest.raises(NoteError, match="PRIVATE"):
        parse_signer_key(GO_VKEY)
    with pytest.raises(NoteError, match="ID"):
        parse_signer_key(GO_SKEY.replace("c74f20a3", "c74f20a4"))


@pytest.mark.parametrize("name", ["", "a+b", "a b", "a\tb", "a\u00a0b", "a\u2003b", "a\u3000b"])
def test_key_names_have_no_spaces_or_plus(name: str) -> None:
    with pytest.raises(NoteError):
        Signer(name, Ed25519PrivateKey.generate())


# --- signing and opening ---------------------------------------------------------------


def test_a_checkpoint_round_trips() -> None:
    text = checkpoint_note()
    assert text.startswith(f"{ORIGIN}\n42\n{base64.b64encode(ROOT).decode()}\n\n— {ORIGIN} ")
    opened, verified = open_note(text, [LOG.verifier()])
    assert [s.name for s in verified] == [ORIGIN]
    assert Checkpoint.parse(opened.body) == Checkpoint(ORIGIN, 42, ROOT)
    assert opened.format() == text
    signature = base64.b64decode(text.rsplit(" ", 1)[1])
    assert len(signature) == 4 + 64 and signature[:4] == LOG.key_id.to_bytes(4, "big")


def test_witness_cosigning_keeps_the_logs_signature() -> None:
    text = checkpoint_note()
    cosigned = add_signature(text, WITNESS)
    assert cosigned.startswith(text)
    assert cosigned.count("\n— ") == 2
    _, by_log = open_note(cosigned, [LOG.verifier()])
    _, by_witness = open_note(cosigned, [WITNESS.verifier()])
    _, by_both = open_note(cosigned, [LOG.verifier(), WITNESS.verifier()])
    assert [s.name for s in by_log] == [ORIGIN]
    assert [s.name for s in by_witness] == [WITNESS.name]
    assert [s.name for s in by_both] == [ORIGIN, WITNESS.name]
    # cosigning twice replaces the witness's own line
    assert add_signature(cosigned, WITNESS) == cosigned


def test_unknown_signatures_are_ignored_but_kept() -> None:
    text = checkpoint_note(signers=(WITNESS, LOG))
    opened, verified = open_note(text, [LOG.verifier()])
    assert [s.name for s in opened.signatures] == [WITNESS.name, ORIGIN]
    assert [s.name for s in verified] == [ORIGIN]


def test_a_note_no_known_key_signed_is_rejected() -> None:
    with pytest.raises(NoteError, match="no signature by a known key"):
        open_note(checkpoint_note(signers=(WITNESS,)), [LOG.verifier()])
    # the same name, another key: another key ID, so unknown
    with pytest.raises(NoteError, match="no signature by a known key"):
        open_note(checkpoint_note(signers=(OTHER,)), [LOG.verifier()])
    with pytest.raises(NoteError, match="no signature by a known key"):
        open_note(checkpoint_note(), [])


def test_a_bad_signature_by_a_known_key_rejects_the_whole_note() -> None:
    good = checkpoint_note()
    # the log's line moved onto another body
    forged = checkpoint_note(size=43).split("\n\n")[0] + "\n\n" + good.split("\n\n")[1]
    with pytest.raises(NoteError, match="does not verify"):
        open_note(forged, [LOG.verifier()])
    # a good witness signature does not save a bad log signature
    with pytest.raises(NoteError, match="does not verify"):
        open_note(add_signature(forged, WITNESS), [LOG.verifier(), WITNESS.verifier()])
    # another key's signature under the log's name and key ID
    body = Checkpoint(ORIGIN, 42, ROOT).body()
    impostor = Signature(ORIGIN, LOG.key_id, OTHER.private_key.sign(body.encode()))
    with pytest.raises(NoteError, match="does not verify"):
        open_note(SignedNote(body, [impostor]).format(), [LOG.verifier()])
    # a short signature from a known key
    short = Signature(ORIGIN, LOG.key_id, b"\x01" * 10)
    with pytest.raises(NoteError, match="does not verify"):
        open_note(SignedNote(body, [short]).format(), [LOG.verifier()])


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_changed_byte_is_rejected(data: st.DataObject) -> None:
    raw = bytearray(checkpoint_note().encode())
    raw[data.draw(st.integers(0, len(raw) - 1), "at")] ^= 1 << data.draw(st.integers(0, 7), "bit")
    with pytest.raises(NoteError):
        open_note(bytes(raw), [LOG.verifier(), WITNESS.verifier()])


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_changed_byte_in_a_cosigned_note_loses_a_signature_at_least(data: st.DataObject) -> None:
    raw = bytearray(add_signature(checkpoint_note(), WITNESS).encode())
    raw[data.draw(st.integers(0, len(raw) - 1), "at")] ^= 1 << data.draw(st.integers(0, 7), "bit")
    try:
        _, verified = open_note(bytes(raw), [LOG.verifier(), WITNESS.verifier()])
    except NoteError:
        return
    # only a changed key name, which makes that line an unknown key's, is not an error
    assert len(verified) == 1


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.text(st.characters(blacklist_categories=["Cs", "Cc"]), min_size=1), min_size=1, max_size=5)
)
def test_any_valid_body_round_trips(lines: list[str]) -> None:
    body = "".join(line + "\n" for line in lines)
    text = sign_note(body, [LOG, WITNESS])
    opened, verified = open_note(text, [LOG.verifier(), WITNESS.verifier()])
    assert opened.body == body
    assert len(verified) == 2


@pytest.mark.parametrize(
    "text",
    [
        "",
        "body\n",  # no signatures
        "body\n\n",  # an empty signature block
        "body\n\n— name AAAAAAAA",  # no final newline
        "body\n\n-- name AAAAAAAAAA==\n",  # not an em dash
        "body\n\n—name AAAAAAAAAA==\n",  # no space after the dash
        "body\n\n— name\n",  # no signature
        "body\n\n— name AAAA\n",  # too short
        "body\n\n— name AAAA AAAA\n",  # two spaces
        "body\n\n— name not*base64=\n",
        "body\n\n— name AAAAAAAAAB==\n",  # not canonical base64
        "body\n\n— na+me AAAAAAAAAA==\n",
        "bo\tdy\n\n— name AAAAAAAAAA==\n",  # a control character
        "body\n\n— name AAAAAAAAAA==\n\n",  # a blank line at the end
    ],
)
def test_malformed_notes_are_refused(text: str) -> None:
    with pytest.raises(NoteError):
        parse_note(text)
    with pytest.raises(NoteError):
        open_note(text, [LOG.verifier()])


def test_invalid_utf8_and_size_limits() -> None:
    with pytest.raises(NoteError, match="UTF-8"):
        parse_note(b"body\xff\n\n\xe2\x80\x94 a AAAAAAAAAA==\n")
    many = "".join(add_signature(checkpoint_note(), WITNESS).split("\n\n")[1] for _ in range(51))
    with pytest.raises(NoteError, match="more than 100"):
        parse_note(Checkpoint(ORIGIN, 1, ROOT).body() + "\n" + many)
    with pytest.raises(NoteError, match="exceed"):
        parse_note("x" * (note.MAX_NOTE_BYTES + 1))


def test_text_rules() -> None:
    for body in ("", "no newline", "tab\there\n", "bell\a\n"):
        with pytest.raises(NoteError):
            LOG.sign(body)
    with pytest.raises(NoteError):
        sign_note("body\n", [])
    # an empty line inside the text is allowed: the last blank line splits
    text = sign_note("a\n\nb\n", [LOG])
    assert open_note(text, [LOG.verifier()])[0].body == "a\n\nb\n"


def test_ambiguous_verifiers_are_refused() -> None:
    fake = Verifier.__new__(Verifier)
    fake.name, fake.key_id = LOG.name, LOG.key_id
    fake.public_key, fake.public_key_bytes = OTHER.public_key, OTHER.public_key.public_bytes_raw()
    with pytest.raises(NoteError, match="two verifier keys"):
        open_note(checkpoint_note(), [LOG.verifier(), fake])
    # the same key twice is fine
    open_note(checkpoint_note(), [LOG.verifier(), LOG.verifier()])


# --- checkpoints -----------------------------------------------------------------------


def test_checkpoint_body_and_extensions() -> None:
    cp = Checkpoint(ORIGIN, 0, hashlib.sha256(b"").digest(), ("Timestamp: 1", "other"))
    body = cp.body()
    assert body == f"{ORIGIN}\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\nTimestamp: 1\nother\n"
    assert Checkpoint.parse(body) == cp


@pytest.mark.parametrize(
    "body",
    [
        "origin\n1\n",  # two lines
        "origin\n01\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",  # leading zero
        "origin\n-1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",
        "origin\n+1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",
        "origin\n١\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",  # an Arabic-Indic digit
        "origin\n99999999999999999999\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",
        "origin\n1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuF=\n",  # not canonical
        "origin\n1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hS\n",  # 30 bytes
        "origin\n1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=",  # no final newline
        "origin\n1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n\nextension\n",  # empty line
        "\n1\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",  # empty origin
    ],
)
def test_malformed_checkpoints_are_refused(body: str) -> None:
    with pytest.raises(NoteError):
        Checkpoint.parse(body)


def test_checkpoint_fields_are_checked() -> None:
    with pytest.raises(NoteError):
        Checkpoint("", 1, ROOT)
    with pytest.raises(NoteError):
        Checkpoint("a\nb", 1, ROOT)
    with pytest.raises(NoteError):
        Checkpoint(ORIGIN, -1, ROOT)
    with pytest.raises(NoteError):
        Checkpoint(ORIGIN, 1, ROOT[:31])
    with pytest.raises(NoteError):
        Checkpoint(ORIGIN, 1, ROOT, ("",))
    with pytest.raises(NoteError):
        Checkpoint(ORIGIN, 1, ROOT, ("a\nb",))


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**63 - 1), st.binary(min_size=32, max_size=32))
def test_any_checkpoint_round_trips(size: int, root: bytes) -> None:
    cp = Checkpoint(ORIGIN, size, root)
    assert Checkpoint.parse(cp.body()) == cp


def test_the_core_does_no_io() -> None:
    source = note.__loader__.get_source(note.__name__)  # type: ignore[union-attr]
    assert source is not None
    for name in ("asyncpg", "aiokafka", "fastapi", "httpx", "open(", "socket", "os."):
        assert name not in source, name
