"""cosignature/v1 (C2SP tlog-cosignature, type 0x04): key IDs, keys, signing and verifying.
Interoperability with the standard witnesses (litewitness, omniwitness) is tested in
tests/e2e/test_standard_witnesses.py; these are the rules."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.transparency import note
from services.transparency.log import DEV_LOG_KEY_SEED, DEV_LOG_ORIGIN

LOG = note.Signer(DEV_LOG_ORIGIN, Ed25519PrivateKey.from_private_bytes(DEV_LOG_KEY_SEED))
BODY = note.Checkpoint(DEV_LOG_ORIGIN, 20852163, bytes(range(32))).body()
WITNESS_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
NAME = "witness.so-tttt.example.gov.vn"


def cosigner(clock: float = 1_679_315_147) -> note.Cosigner:
    return note.Cosigner(NAME, WITNESS_KEY, clock=lambda: clock)


def test_the_key_id_commits_to_type_0x04() -> None:
    raw = WITNESS_KEY.public_key().public_bytes_raw()
    expected = hashlib.sha256(NAME.encode() + b"\n\x04" + raw).digest()[:4]
    assert cosigner().key_id == int.from_bytes(expected, "big")
    assert cosigner().key_id != note.Signer(NAME, WITNESS_KEY).key_id
    vkey = cosigner().verifier().key()
    encoded = base64.b64encode(b"\x04" + raw).decode()
    assert vkey == f"{NAME}+{expected.hex()}+{encoded}"
    parsed = note.parse_witness_key(vkey)
    assert isinstance(parsed, note.CosignatureVerifier) and parsed == cosigner().verifier()
    assert type(note.parse_witness_key(note.Signer(NAME, WITNESS_KEY).verifier().key())) is note.Verifier


def test_the_signed_message_is_the_header_the_time_and_the_body() -> None:
    signature = cosigner().cosign(BODY, 1_679_315_147)
    assert note.cosignature_time(signature) == 1_679_315_147
    assert signature.signature[:8] == (1_679_315_147).to_bytes(8, "big")
    message = b"cosignature/v1\ntime 1679315147\n" + BODY.encode()
    WITNESS_KEY.public_key().verify(signature.signature[8:], message)  # raises if not


def test_a_cosigned_checkpoint_opens_with_both_keys_and_the_time_is_covered() -> None:
    signed = note.sign_note(BODY, [LOG])
    cosigned = note.add_signature(signed, cosigner())
    opened, verified = note.open_note(cosigned, [LOG.verifier(), cosigner().verifier()])
    assert [s.name for s in verified] == [DEV_LOG_ORIGIN, NAME]
    assert note.cosignature_time(verified[1]) == 1_679_315_147
    # Another time under the same signature: the cosignature no longer verifies.
    line = verified[1]
    moved = note.Signature(line.name, line.key_id, (1_679_315_148).to_bytes(8, "big") + line.signature[8:])
    forged = note.SignedNote(opened.body, [opened.signatures[0], moved]).format()
    with pytest.raises(note.NoteError, match="does not verify"):
        note.open_note(forged, [LOG.verifier(), cosigner().verifier()])


def test_a_type_0x01_verifier_of_the_same_key_ignores_a_cosignature() -> None:
    cosigned = note.add_signature(note.sign_note(BODY, [LOG]), cosigner())
    _, verified = note.open_note(cosigned, [LOG.verifier(), note.Signer(NAME, WITNESS_KEY).verifier()])
    assert [s.name for s in verified] == [DEV_LOG_ORIGIN]


@pytest.mark.parametrize("length", [0, 64, 71, 73])
def test_a_cosignature_of_the_wrong_length_does_not_verify(length: int) -> None:
    assert not cosigner().verifier().verify(BODY, bytes(length))


def test_timestamps_beyond_2_63_are_refused() -> None:
    with pytest.raises(note.NoteError, match="timestamp"):
        cosigner().cosign(BODY, 2**63)
    signature = cosigner().cosign(BODY, 5)
    assert not cosigner().verifier().verify(BODY, (2**64 - 1).to_bytes(8, "big") + signature.signature[8:])


def test_a_cosigner_key_round_trips_as_a_signer_key_of_type_0x04() -> None:
    text = note.signer_key(NAME, WITNESS_KEY, note.ALG_COSIGNATURE_V1)
    parsed = note.parse_signer_key(text)
    assert isinstance(parsed, note.Cosigner) and parsed.key_id == cosigner().key_id
    assert type(note.parse_signer_key(note.signer_key(NAME, WITNESS_KEY))) is note.Signer
    with pytest.raises(note.NoteError, match="type 0x01 or 0x04"):
        wrong_type = base64.b64encode(b"\x02" + bytes(32)).decode()
        note.parse_witness_key(f"{NAME}+00000000+{wrong_type}")
    with pytest.raises(note.NoteError, match="is not its key's"):
        note.parse_witness_key(
            cosigner().verifier().key().replace(f"+{cosigner().key_id:08x}+", "+00000000+")
        )


def test_log_keys_stay_type_0x01_only() -> None:
    with pytest.raises(note.NoteError, match="type 0x01"):
        note.parse_verifier_key(cosigner().verifier().key())


def test_plain_cosignatures_are_accepted_until_the_end_of_their_period() -> None:
    import datetime as dt

    from services.registry.entrypoints.log_routes import cosignature_refusal

    plain = note.Signer(NAME, WITNESS_KEY).signature(BODY)
    until = dt.date(2027, 6, 30)
    last_second = dt.datetime(2027, 6, 30, 23, 59, 59, tzinfo=dt.UTC).timestamp()
    assert cosignature_refusal([plain], until, 300, now=last_second) is None
    refused = cosignature_refusal([plain], until, 300, now=last_second + 1)
    assert refused is not None and "accepted until 2027-06-30" in refused
    # cosignature/v1: never out of period, but not from the future.
    now = 1_800_000_000
    assert cosignature_refusal([cosigner().cosign(BODY, now + 300)], until, 300, now=now) is None
    ahead = cosignature_refusal([cosigner().cosign(BODY, now + 301)], until, 300, now=now)
    assert ahead is not None and "future" in ahead
