"""The registry's event signatures and a consumer's checks (services/common/envelope_signatures.py):
what each check refuses, with which reason, and which keys each side accepts."""

from __future__ import annotations

import base64

import pytest
from coordreg_contracts.envelope import Envelope, envelope_hash, seal
from coordreg_contracts.events import TermClosed
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.common.envelope_signatures import (
    DEV_SIGNER,
    DEV_VERIFIER_KEY,
    EnvelopeSigner,
    EnvelopeVerifier,
    EventKeyError,
    RecordRefused,
    check_hash,
    check_link,
    load_event_signer,
    load_event_verifier,
    signed_text,
)
from services.transparency import note


def closing(prevhash: str = "ab" * 32, sequence: int = 4) -> Envelope:
    return seal(
        event=TermClosed.model_validate(
            {"closed_on": "2020-12-31", "outcome": "completed", "summary": "Tổng kết năm 2020"}
        ),
        event_id="7d1f0d1e-0000-4000-8000-000000000001",
        agreement_id="a-1",
        sequence=sequence,
        recorded_at="2026-11-22T14:00:00.000000Z",
        prevhash=prevhash,
        actor="mttq-bac-kan-system",
        correlation_id="c-1",
        causation_id="k-1",
    )


def other_signer(name: str = "forger.example/events") -> EnvelopeSigner:
    return EnvelopeSigner(name, Ed25519PrivateKey.generate())


def reason(call: object) -> str:
    assert callable(call)
    with pytest.raises(RecordRefused) as refused:
        call()
    return refused.value.reason


DEV = EnvelopeVerifier.from_keys([DEV_VERIFIER_KEY])


def test_a_signature_by_the_registry_key_verifies_and_is_a_signed_note_line() -> None:
    envelope = closing()
    header = DEV_SIGNER.sign(envelope.hash)
    DEV.check(envelope.hash, header)
    DEV.check(envelope.hash, header.encode("ascii"))  # as a Kafka header's bytes
    # The header is a C2SP signed note's signature line without its em dash: any note library
    # opens "<signed text>\n— <header>\n" with the published verifier key.
    opened, verified = note.open_note(
        f"{signed_text(envelope.hash)}\n— {header}\n", [note.parse_verifier_key(DEV_VERIFIER_KEY)]
    )
    assert opened.body == f"coordreg envelope\n{envelope.hash}\n"
    assert [v.name for v in verified] == ["dev.coordreg.invalid/events"]


def test_the_signature_covers_the_hash_and_leaves_the_hash_as_it_was() -> None:
    envelope = closing()
    fields = envelope.model_dump()
    assert envelope_hash(fields) == envelope.hash  # the signature is not an attribute: nothing moved
    header = DEV_SIGNER.sign(envelope.hash)
    assert reason(lambda: DEV.check(closing(prevhash="cd" * 32).hash, header)) == "signature"


def test_unsigned_and_malformed_signatures_are_refused_with_their_reason() -> None:
    h = closing().hash
    good = DEV_SIGNER.sign(h)
    name, encoded = good.split(" ")
    raw = base64.b64decode(encoded)
    flipped = base64.b64encode(raw[:-1] + bytes([raw[-1] ^ 1])).decode()
    assert reason(lambda: DEV.check(h, None)) == "unsigned"
    assert reason(lambda: DEV.check(h, b"")) == "unsigned"
    for bad in (
        "no-space-at-all",
        f"{name} not*base64",
        f"{name} {base64.b64encode(raw[:10]).decode()}",  # too short
        f"{name} {flipped}",  # one bit of the signature changed
        f"{name}  {encoded}",  # two spaces
        "x" * 5000,
        b"\xff\xfe",
    ):
        assert reason(lambda bad=bad: DEV.check(h, bad)) == "signature", bad


def test_a_forger_with_a_key_of_its_own_is_refused_even_under_the_registry_key_name() -> None:
    h = closing().hash
    assert reason(lambda: DEV.check(h, other_signer().sign(h))) == "signature"
    # Same name, other key: the key ID differs, so no trusted key matches.
    assert reason(lambda: DEV.check(h, other_signer(DEV_SIGNER.name).sign(h))) == "signature"


def test_a_consumer_trusts_each_configured_key_so_a_retired_key_still_verifies() -> None:
    new = other_signer("registry.example/events-2")
    both = EnvelopeVerifier.from_keys([new.verifier_key, DEV_VERIFIER_KEY])
    h = closing().hash
    both.check(h, new.sign(h))
    both.check(h, DEV_SIGNER.sign(h))
    only_new = EnvelopeVerifier.from_keys([new.verifier_key])
    assert reason(lambda: only_new.check(h, DEV_SIGNER.sign(h))) == "signature"


def test_the_hash_check_refuses_a_record_whose_hash_is_not_its_own() -> None:
    envelope = closing()
    check_hash(envelope)
    tampered = envelope.model_copy(update={"data": {**envelope.data, "outcome": "terminated"}})
    assert reason(lambda: check_hash(tampered)) == "hash"
    # A position is not hashed: the relay's store order may be added without breaking it.
    check_hash(envelope.model_copy(update={"position": 1041}))


def test_the_chain_check_wants_the_last_applied_hash_and_empty_before_the_first() -> None:
    first = closing(prevhash="", sequence=1)
    check_link(first, "")
    second = closing(prevhash=first.hash, sequence=2)
    check_link(second, first.hash)
    assert reason(lambda: check_link(second, "ef" * 32)) == "prevhash"
    assert reason(lambda: check_link(first, second.hash)) == "prevhash"


def _pem(key: Ed25519PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def test_development_uses_the_development_key_and_production_refuses_it(tmp_path: object) -> None:
    assert load_event_signer(environment="development", key_pem="", key_name="") is DEV_SIGNER
    with pytest.raises(EventKeyError, match="production needs"):
        load_event_signer(environment="production", key_pem="", key_name="r.example/events")
    with pytest.raises(EventKeyError, match="development event key"):
        load_event_signer(environment="production", key_pem=_pem(DEV_SIGNER.key), key_name="r.example/events")
    own = Ed25519PrivateKey.generate()
    with pytest.raises(EventKeyError, match="EVENT_KEY_NAME"):
        load_event_signer(environment="production", key_pem=_pem(own), key_name="")
    signer = load_event_signer(environment="production", key_pem=_pem(own), key_name="r.example/events")
    assert signer.verifier_key.startswith("r.example/events+")
    with pytest.raises(EventKeyError, match="Ed25519"):
        from cryptography.hazmat.primitives.asymmetric import ec

        p256 = ec.generate_private_key(ec.SECP256R1())
        pem = p256.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        load_event_signer(environment="production", key_pem=pem, key_name="r.example/events")


def test_consumers_refuse_no_key_and_the_development_key_in_production() -> None:
    setting = "PROJECTIONS_EVENT_VERIFIER_KEYS"
    h = closing().hash
    load_event_verifier(environment="development", keys="", setting=setting).check(h, DEV_SIGNER.sign(h))
    with pytest.raises(EventKeyError, match="production needs"):
        load_event_verifier(environment="production", keys="", setting=setting)
    own = other_signer("r.example/events")
    with pytest.raises(EventKeyError, match="development event key"):
        load_event_verifier(
            environment="production", keys=f"{own.verifier_key} {DEV_VERIFIER_KEY}", setting=setting
        )
    with pytest.raises(EventKeyError, match="not an event verifier key"):
        load_event_verifier(environment="production", keys="not-a-key", setting=setting)
    production = load_event_verifier(environment="production", keys=f"{own.verifier_key}\n", setting=setting)
    production.check(h, own.sign(h))
    assert reason(lambda: production.check(h, DEV_SIGNER.sign(h))) == "signature"
