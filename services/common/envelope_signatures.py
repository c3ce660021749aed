"""The registry's signatures over its events, and the checks a consumer makes before it applies
one (docs/adr/0003-signed-envelopes.md, docs/CONTRACT.md B12). Pure: no I/O.

The registry signs each event's `hash` with its event key (Ed25519) as it appends the event; the
signature is stored beside the envelope and travels as the Kafka record header
`envelope-signature`, never inside the envelope, so `hash`, the record value and the transparency
log's leaves are what they were. The signed text is a C2SP signed-note body and the header is the
note's signature line without its leading em dash, so Go's `note.Open` verifies it too:

    signed text:  "coordreg envelope\\n<hash>\\n"
    header:       "<key name> <base64(4-byte key ID || 64-byte Ed25519 signature)>"

Before applying a record a consumer checks, in this order: its `hash` is the SHA-256 of its own
canonical JSON (`check_hash`); the header is a signature of that hash by a key it trusts
(`EnvelopeVerifier.check`); and, when the record is the stream's next one, its `prevhash` is the
`hash` of the last event it applied for that stream (`check_link`). A refusal is a
`RecordRefused` whose `reason` names the check.

Keys follow the log's (services/transparency/log.py): with no key configured, a development key
signs and is trusted; it is public on purpose, so production refuses it on both sides.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

from coordreg_contracts.envelope import Envelope
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.transparency import note
from services.transparency.keys import read_private_key

SIGNATURE_HEADER = "envelope-signature"
SIGNED_TEXT_PREFIX = "coordreg envelope\n"
# The development event key's seed: public on purpose (deploy/dev-keys/README.md).
DEV_EVENT_KEY_SEED = bytes.fromhex("683c78138dd26275cb91e36aa5c5c1e15cc55f9f9c02c278c8925713565d7cef")
DEV_EVENT_KEY_NAME = "dev.coordreg.invalid/events"
# A header longer than a key name's bound plus the signature is refused before it is decoded.
_MAX_HEADER = 1024

Reason = Literal["hash", "prevhash", "unsigned", "signature"]


class RecordRefused(ValueError):
    """A record that is not the registry's next event of its stream. `reason`: `hash` (it does
    not hash to its own `hash`), `prevhash` (it does not chain to the last event applied),
    `unsigned` (no signature), `signature` (malformed, by no trusted key, or not verifying)."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: Reason = reason


class EventKeyError(ValueError):
    """The event key configuration cannot be used (the message says why)."""


def signed_text(envelope_hash: str) -> str:
    """The note body the registry signs for an event: its hash, behind a fixed first line so
    that no other kind of note (a log checkpoint, say) reads the same."""
    return f"{SIGNED_TEXT_PREFIX}{envelope_hash}\n"


@dataclass(frozen=True)
class EnvelopeSigner:
    """The registry's event key, under its name (the name is part of the key ID)."""

    name: str
    key: Ed25519PrivateKey

    @cached_property
    def _signer(self) -> note.Signer:
        # Built once: it derives the public key and the key ID, a fifth of a signature's cost.
        return note.Signer(self.name, self.key)

    def sign(self, envelope_hash: str) -> str:
        """The `envelope-signature` header value for the event whose hash this is."""
        return f"{self.name} {self._signer.signature(signed_text(envelope_hash)).encoded()}"

    @property
    def verifier_key(self) -> str:
        """The public half, in Go's note verifier key format (what consumers configure)."""
        return note.verifier_key(self.name, self.key.public_key())


DEV_SIGNER = EnvelopeSigner(DEV_EVENT_KEY_NAME, Ed25519PrivateKey.from_private_bytes(DEV_EVENT_KEY_SEED))
DEV_VERIFIER_KEY = DEV_SIGNER.verifier_key


class EnvelopeVerifier:
    """The event keys a consumer trusts (the current one and any retired ones still in use)."""

    def __init__(self, verifiers: Iterable[note.Verifier]) -> None:
        self._by_id = {(v.name, v.key_id): v for v in verifiers}
        if not self._by_id:
            raise EventKeyError("a consumer needs at least one event verifier key")

    @classmethod
    def from_keys(cls, keys: Iterable[str]) -> EnvelopeVerifier:
        try:
            return cls(note.parse_verifier_key(k) for k in keys)
        except note.NoteError as exc:
            raise EventKeyError(f"not an event verifier key: {exc}") from None

    def check(self, envelope_hash: str, header: str | bytes | None) -> None:
        """Raises RecordRefused unless `header` is a trusted key's signature of `envelope_hash`."""
        if header is None or header == b"" or header == "":
            raise RecordRefused("unsigned", f"no {SIGNATURE_HEADER} header")
        if len(header) > _MAX_HEADER:
            raise RecordRefused("signature", f"{SIGNATURE_HEADER} is longer than {_MAX_HEADER} bytes")
        try:
            text = header.decode("ascii") if isinstance(header, bytes) else header
            name, encoded = text.split(" ")
            raw = base64.b64decode(encoded.encode("ascii"), validate=True)
        except (UnicodeError, ValueError, binascii.Error):
            raise RecordRefused("signature", f"{SIGNATURE_HEADER} is not '<key name> <base64>'") from None
        if len(raw) != 4 + 64:
            raise RecordRefused("signature", "the signature is not a key ID and 64 bytes")
        verifier = self._by_id.get((name, int.from_bytes(raw[:4], "big")))
        if verifier is None:
            raise RecordRefused("signature", f"signed by a key this consumer does not trust ({name!r})")
        if not verifier.verify(signed_text(envelope_hash), raw[4:]):
            raise RecordRefused("signature", f"the signature by {name!r} does not verify")


def check_hash(envelope: Envelope) -> None:
    """The record hashes to its own `hash` (a tampered or carelessly forged record does not)."""
    computed = envelope.computed_hash()
    if computed != envelope.hash:
        raise RecordRefused("hash", f"hash {envelope.hash[:16]}… != recomputed {computed[:16]}…")


def check_link(envelope: Envelope, last_hash: str) -> None:
    """The stream's next record names the last applied event's hash (empty before sequence 1)."""
    if envelope.prevhash != last_hash:
        shown = last_hash[:16] + "…" if last_hash else '""'
        raise RecordRefused(
            "prevhash",
            f"prevhash {envelope.prevhash[:16]}… of {envelope.subject} sequence {envelope.sequence}"
            f" is not the hash of the last event applied ({shown})",
        )


def load_event_signer(*, environment: str, key_pem: str, key_name: str) -> EnvelopeSigner:
    """The registry's signer as its settings name it: `key_pem` is a PEM Ed25519 private key (its
    text, or a path to it); empty means the development key, which production refuses."""
    if not key_pem:
        if environment == "production":
            raise EventKeyError(
                "production needs REGISTRY_EVENT_SIGNING_KEY: an Ed25519 private key (PEM) of its own"
            )
        return DEV_SIGNER
    key = read_private_key(key_pem, setting="REGISTRY_EVENT_SIGNING_KEY", error=EventKeyError)
    if (
        environment == "production"
        and key.public_key().public_bytes_raw() == DEV_SIGNER.key.public_key().public_bytes_raw()
    ):
        raise EventKeyError("production refuses the development event key (it is public)")
    if not key_name:
        raise EventKeyError(
            "REGISTRY_EVENT_KEY_NAME must name the event key (e.g. registry.example.gov.vn/events)"
        )
    try:
        note.check_key_name(key_name)
    except note.NoteError as exc:
        raise EventKeyError(f"REGISTRY_EVENT_KEY_NAME: {exc}") from None
    return EnvelopeSigner(key_name, key)


def load_event_verifier(*, environment: str, keys: str, setting: str) -> EnvelopeVerifier:
    """The verifier a consumer's settings name: `keys` holds note verifier keys separated by
    spaces or newlines, or is the path of a file that does (starting with `/`, as a mounted
    ConfigMap is); empty means the development key, which production refuses."""
    if keys.startswith("/"):
        try:
            with open(keys, encoding="utf-8") as handle:
                keys = handle.read()
        except OSError as exc:
            raise EventKeyError(f"{setting}: cannot read {keys}: {exc.strerror}") from None
    named = keys.split()
    if not named:
        if environment == "production":
            raise EventKeyError(f"production needs {setting}: the registry's event verifier key(s)")
        return EnvelopeVerifier.from_keys([DEV_VERIFIER_KEY])
    verifier = EnvelopeVerifier.from_keys(named)
    dev = note.parse_verifier_key(DEV_VERIFIER_KEY)
    if environment == "production" and any(
        note.parse_verifier_key(k).public_key_bytes == dev.public_key_bytes for k in named
    ):
        raise EventKeyError(f"production refuses the development event key in {setting} (it is public)")
    return verifier
