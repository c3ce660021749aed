"""C2SP signed notes (https://c2sp.org/signed-note) with Ed25519 keys, and the
transparency log checkpoint they carry (https://c2sp.org/tlog-checkpoint).

Pure: no I/O. The text formats are those of Go's golang.org/x/mod/sumdb/note, so that its
`note.Open` verifies what `Signer` signs, and its keys can be read here:

* a signed note: the body (text ending in a newline), a blank line, then one or more
  signature lines "— <key name> <base64(4-byte key ID || signature)>\\n" (em dash U+2014);
* key ID = SHA-256(key name || 0x0A || 0x01 || 32-byte Ed25519 public key)[:4], big-endian;
* verifier key "<name>+<8 hex digits key ID>+<base64(0x01 || public key)>";
* signer key "PRIVATE+KEY+<name>+<8 hex digits key ID>+<base64(0x01 || 32-byte seed)>".

Witnesses' cosignatures follow C2SP tlog-cosignature (https://c2sp.org/tlog-cosignature),
"cosignature/v1": signature type 0x04 (in the key ID and the verifier key, in place of 0x01),
and the signature is a big-endian u64 timestamp then Ed25519 over
"cosignature/v1\ntime <timestamp>\n" followed by the checkpoint's text. Go's note package does
not know the type; litewitness and omniwitness sign it. A cosigner's private key is written as
a signer key with type 0x04 (this project's convention: no standard format exists).

Verification follows the spec: signatures whose (key name, key ID) no verifier knows are
kept but ignored; a signature from a known key that does not verify rejects the whole
note; a note that no known key signed is rejected.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

__all__ = [
    "ALG_COSIGNATURE_V1",
    "ALG_ED25519",
    "MAX_NOTE_BYTES",
    "MAX_SIGNATURES",
    "SIGNATURE_PREFIX",
    "Checkpoint",
    "CosignatureVerifier",
    "Cosigner",
    "NoteError",
    "Signature",
    "SignedNote",
    "Signer",
    "Verifier",
    "add_signature",
    "check_key_name",
    "check_text",
    "cosignature_time",
    "key_id",
    "open_note",
    "parse_note",
    "parse_signer_key",
    "parse_verifier_key",
    "parse_witness_key",
    "sign_note",
    "signer_key",
    "verifier_key",
]

ALG_ED25519 = 0x01
"""The signature type byte of Ed25519 signatures (c2sp.org/signed-note)."""

ALG_COSIGNATURE_V1 = 0x04
"""The signature type byte of Ed25519 timestamped cosignatures (c2sp.org/tlog-cosignature)."""

COSIGNATURE_HEADER = "cosignature/v1\n"
"""What starts the message a cosignature/v1 signs (domain separation)."""

SIGNATURE_PREFIX = "— "
"""What starts a signature line: em dash U+2014, then a space."""

MAX_SIGNATURES = 100
"""Signature lines a note may carry (Go's note.Open has the same limit; the spec asks
for at least 16)."""

MAX_NOTE_BYTES = 1 << 20
"""The largest signed note read or written, in UTF-8 bytes."""

_HASH_SIZE = 32
_ED25519_SIGNATURE_SIZE = 64
_TIMESTAMP_SIZE = 8
_ALGORITHMS = (ALG_ED25519, ALG_COSIGNATURE_V1)
_PRIVATE_KEY_PREFIX = "PRIVATE+KEY+"
# Unicode spaces (Go's unicode.IsSpace) that str.isspace might not cover; both are refused.
_GO_SPACES = frozenset("\t\n\v\f\r \x85\xa0\u1680\u2028\u2029\u202f\u205f\u3000") | frozenset(
    chr(c) for c in range(0x2000, 0x200B)
)
_V = TypeVar("_V", bound="Verifier | Signer")
_DECIMAL = re.compile(r"(0|[1-9][0-9]*)")
_MAX_SIZE = 2**63 - 1


class NoteError(Exception):
    """A malformed note, key or checkpoint, or a note that does not verify."""


# --- text and names --------------------------------------------------------------------


def _utf8(text: str, what: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise NoteError(f"{what} is not valid UTF-8 text") from exc


def _check_characters(text: str, what: str) -> None:
    for ch in text:
        if ch < " " and ch != "\n":
            raise NoteError(f"{what} holds the control character U+{ord(ch):04X}")


def check_text(body: str) -> None:
    """Raise NoteError unless `body` may be a note's text: non-empty, valid UTF-8, ending
    in a newline, with no ASCII control character but the newline."""
    if not isinstance(body, str):
        raise NoteError("a note's text must be a string")
    if not body:
        raise NoteError("a note's text must not be empty")
    if not body.endswith("\n"):
        raise NoteError("a note's text must end with a newline")
    _check_characters(body, "the note's text")
    if len(_utf8(body, "the note's text")) > MAX_NOTE_BYTES:
        raise NoteError(f"a note's text must not exceed {MAX_NOTE_BYTES} bytes")


def check_key_name(name: str) -> None:
    """Raise NoteError unless `name` is a valid key name: non-empty UTF-8 with no Unicode
    space and no plus sign."""
    if not isinstance(name, str) or not name:
        raise NoteError("a key name must be a non-empty string")
    _utf8(name, "the key name")
    if "+" in name:
        raise NoteError(f"key name {name!r} contains a plus sign")
    if any(ch.isspace() or ch in _GO_SPACES for ch in name):
        raise NoteError(f"key name {name!r} contains a space")
    _check_characters(name, "the key name")


def _b64decode(text: str, what: str) -> bytes:
    """Standard base64, canonical only (padded, unused bits zero: one text per value)."""
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError) as exc:
        raise NoteError(f"{what} is not standard base64") from exc
    if _b64(data) != text:
        raise NoteError(f"{what} is not canonical base64")
    return data


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --- keys ------------------------------------------------------------------------------


def _public_bytes(key: Ed25519PublicKey | bytes) -> bytes:
    if isinstance(key, Ed25519PublicKey):
        return key.public_bytes_raw()
    if isinstance(key, bytes | bytearray) and len(key) == 32:
        return bytes(key)
    raise NoteError("an Ed25519 public key is an Ed25519PublicKey or its 32 bytes")


def key_id(name: str, public_key: Ed25519PublicKey | bytes, alg: int = ALG_ED25519) -> int:
    """The key ID of an Ed25519 key: SHA-256(name || 0x0A || alg || public key)[:4], as a
    big-endian unsigned 32-bit integer (alg 0x01: note signatures; 0x04: cosignature/v1)."""
    check_key_name(name)
    if alg not in _ALGORITHMS:
        raise NoteError(f"signature type 0x{alg:02x} is not supported (0x01 or 0x04)")
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([alg]) + _public_bytes(public_key)).digest()
    return int.from_bytes(digest[:4], "big")


@dataclass(frozen=True)
class Signature:
    """One signature line: key name, key ID and the algorithm's signature bytes."""

    name: str
    key_id: int
    signature: bytes

    def encoded(self) -> str:
        """base64(key ID || signature), as the line carries it."""
        return _b64(self.key_id.to_bytes(4, "big") + self.signature)

    def line(self) -> str:
        return f"{SIGNATURE_PREFIX}{self.name} {self.encoded()}\n"


class Verifier:
    """Verifies one Ed25519 key's signatures."""

    ALG = ALG_ED25519

    def __init__(self, name: str, public_key: Ed25519PublicKey | bytes) -> None:
        check_key_name(name)
        raw = _public_bytes(public_key)
        self.name = name
        self.public_key = Ed25519PublicKey.from_public_bytes(raw)
        self.public_key_bytes = raw
        self.key_id = key_id(name, raw, self.ALG)

    def verify(self, text: str | bytes, signature: bytes) -> bool:
        """Whether `signature` (the 64 bytes, no key ID) signs `text`."""
        if len(signature) != _ED25519_SIGNATURE_SIZE:
            return False
        message = text.encode("utf-8") if isinstance(text, str) else text
        try:
            self.public_key.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    def key(self) -> str:
        """This verifier's key in Go's note format (C2SP vkey)."""
        return verifier_key(self.name, self.public_key_bytes, self.ALG)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Verifier) and (self.ALG, self.name, self.public_key_bytes) == (
            other.ALG,
            other.name,
            other.public_key_bytes,
        )

    def __hash__(self) -> int:
        return hash((self.ALG, self.name, self.public_key_bytes))

    def __repr__(self) -> str:
        return f"Verifier({self.key()!r})"


class Signer:
    """Signs note texts with an Ed25519 private key under a key name."""

    ALG = ALG_ED25519

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        check_key_name(name)
        if not isinstance(private_key, Ed25519PrivateKey):
            raise NoteError("a signer needs an Ed25519PrivateKey")
        self.name = name
        self.private_key = private_key
        self.public_key = private_key.public_key()
        self.key_id = key_id(name, self.public_key, self.ALG)

    def signature(self, text: str) -> Signature:
        """The signature of a note's text (checked first with `check_text`)."""
        check_text(text)
        return Signature(self.name, self.key_id, self.private_key.sign(text.encode("utf-8")))

    def sign(self, text: str) -> str:
        """The signature line for a note's text: "— <name> <base64>\\n"."""
        return self.signature(text).line()

    def verifier(self) -> Verifier:
        return Verifier(self.name, self.public_key)

    def __repr__(self) -> str:
        return f"Signer({self.name!r}, key ID {self.key_id:08x})"


def _cosigned_message(body: str | bytes, timestamp: int) -> bytes:
    text = body.encode("utf-8") if isinstance(body, str) else body
    return f"{COSIGNATURE_HEADER}time {timestamp}\n".encode() + text


class CosignatureVerifier(Verifier):
    """Verifies one witness's cosignature/v1 signatures (c2sp.org/tlog-cosignature, type 0x04):
    the signature bytes are the big-endian u64 timestamp, then Ed25519 over the cosigned
    message."""

    ALG = ALG_COSIGNATURE_V1

    def verify(self, text: str | bytes, signature: bytes) -> bool:
        """Whether `signature` (timestamp || Ed25519 signature, no key ID) cosigns `text`."""
        if len(signature) != _TIMESTAMP_SIZE + _ED25519_SIGNATURE_SIZE:
            return False
        timestamp = int.from_bytes(signature[:_TIMESTAMP_SIZE], "big")
        if timestamp > _MAX_SIZE:
            return False
        return super().verify(_cosigned_message(text, timestamp), signature[_TIMESTAMP_SIZE:])

    def __repr__(self) -> str:
        return f"CosignatureVerifier({self.key()!r})"


class Cosigner(Signer):
    """Cosigns checkpoints as a witness, cosignature/v1 (type 0x04), timestamped by `clock`."""

    ALG = ALG_COSIGNATURE_V1

    def __init__(
        self, name: str, private_key: Ed25519PrivateKey, clock: Callable[[], float] = time.time
    ) -> None:
        super().__init__(name, private_key)
        self._clock = clock

    def cosign(self, text: str, timestamp: int) -> Signature:
        """The cosignature of a checkpoint's text at `timestamp` (POSIX seconds)."""
        check_text(text)
        if not 0 <= timestamp <= _MAX_SIZE:
            raise NoteError(f"a cosignature's timestamp must be in 0 … 2**63 − 1, not {timestamp}")
        signed = self.private_key.sign(_cosigned_message(text, timestamp))
        return Signature(self.name, self.key_id, timestamp.to_bytes(_TIMESTAMP_SIZE, "big") + signed)

    def signature(self, text: str) -> Signature:
        """The cosignature of a checkpoint's text now."""
        return self.cosign(text, int(self._clock()))

    def verifier(self) -> CosignatureVerifier:
        return CosignatureVerifier(self.name, self.public_key)

    def __repr__(self) -> str:
        return f"Cosigner({self.name!r}, key ID {self.key_id:08x})"


def cosignature_time(signature: Signature) -> int:
    """The timestamp a cosignature/v1 signature carries (its first 8 bytes, big-endian);
    NoteError if the signature is not of that length."""
    if len(signature.signature) != _TIMESTAMP_SIZE + _ED25519_SIGNATURE_SIZE:
        raise NoteError(f"the signature by {signature.name} is not a cosignature/v1 (72 bytes)")
    return int.from_bytes(signature.signature[:_TIMESTAMP_SIZE], "big")


def verifier_key(name: str, public_key: Ed25519PublicKey | bytes, alg: int = ALG_ED25519) -> str:
    """ "<name>+<hex key ID>+<base64(alg || public key)>": Go's note.NewVerifier input for
    alg 0x01, a C2SP vkey for either type."""
    raw = _public_bytes(public_key)
    return f"{name}+{key_id(name, raw, alg):08x}+{_b64(bytes([alg]) + raw)}"


def _split_key(
    text: str, what: str, algorithms: tuple[int, ...] = (ALG_ED25519,)
) -> tuple[str, int, int, bytes]:
    parts = text.split("+", 2)  # the base64 key may itself hold plus signs
    if len(parts) != 3:
        raise NoteError(f"a {what} has the form <name>+<hex key ID>+<base64 key>")
    name, hex_id, encoded = parts
    check_key_name(name)
    if not re.fullmatch(r"[0-9a-fA-F]{8}", hex_id):
        raise NoteError(f"the {what}'s key ID is not 8 hexadecimal digits")
    key = _b64decode(encoded, f"the {what}'s key")
    if len(key) != 1 + 32 or key[0] not in algorithms:
        types = " or ".join(f"0x{alg:02x}" for alg in algorithms)
        raise NoteError(f"the {what} is not an Ed25519 key (type {types}, 32 bytes)")
    return name, int(hex_id, 16), key[0], key[1:]


def _checked(made: _V, expected_id: int, what: str) -> _V:
    if made.key_id != expected_id:
        raise NoteError(f"the {what}'s ID {expected_id:08x} is not its key's ({made.key_id:08x})")
    return made


def parse_verifier_key(text: str) -> Verifier:
    """Read a verifier key "<name>+<hex key ID>+<base64(0x01 || public key)>"."""
    name, expected_id, _, raw = _split_key(text.strip(), "verifier key")
    return _checked(Verifier(name, raw), expected_id, "verifier key")


def parse_witness_key(text: str) -> Verifier:
    """Read a witness's verifier key: type 0x04 (cosignature/v1, a CosignatureVerifier) or, for
    the witnesses of before issue 24, type 0x01 (plain note signatures, a Verifier)."""
    name, expected_id, alg, raw = _split_key(text.strip(), "verifier key", _ALGORITHMS)
    made = CosignatureVerifier(name, raw) if alg == ALG_COSIGNATURE_V1 else Verifier(name, raw)
    return _checked(made, expected_id, "verifier key")


def signer_key(name: str, private_key: Ed25519PrivateKey, alg: int = ALG_ED25519) -> str:
    """ "PRIVATE+KEY+<name>+<hex key ID>+<base64(alg || seed)>": Go's note.NewSigner input
    for alg 0x01; alg 0x04 makes a cosigner's key (this project's convention).

    It is the private key: keep it secret."""
    signer = Cosigner(name, private_key) if alg == ALG_COSIGNATURE_V1 else Signer(name, private_key)
    seed = private_key.private_bytes_raw()
    return f"{_PRIVATE_KEY_PREFIX}{name}+{signer.key_id:08x}+{_b64(bytes([signer.ALG]) + seed)}"


def parse_signer_key(text: str) -> Signer:
    """Read a signer key "PRIVATE+KEY+<name>+<hex key ID>+<base64(alg || seed)>": a Signer
    for type 0x01, a Cosigner for type 0x04."""
    text = text.strip()
    if not text.startswith(_PRIVATE_KEY_PREFIX):
        raise NoteError(f"a signer key starts with {_PRIVATE_KEY_PREFIX}")
    name, expected_id, alg, seed = _split_key(text[len(_PRIVATE_KEY_PREFIX) :], "signer key", _ALGORITHMS)
    key = Ed25519PrivateKey.from_private_bytes(seed)
    made = Cosigner(name, key) if alg == ALG_COSIGNATURE_V1 else Signer(name, key)
    return _checked(made, expected_id, "signer key")


# --- signed notes ----------------------------------------------------------------------


@dataclass(frozen=True)
class SignedNote:
    """A note's text and its signature lines, in order (verified or not)."""

    body: str
    signatures: list[Signature] = field(default_factory=list)

    def format(self) -> str:
        """The note as sent: body, blank line, signature lines."""
        check_text(self.body)
        if not self.signatures:
            raise NoteError("a signed note needs at least one signature")
        if len(self.signatures) > MAX_SIGNATURES:
            raise NoteError(f"a note must not carry more than {MAX_SIGNATURES} signatures")
        for sig in self.signatures:
            check_key_name(sig.name)
        text = self.body + "\n" + "".join(sig.line() for sig in self.signatures)
        if len(text.encode("utf-8")) > MAX_NOTE_BYTES:
            raise NoteError(f"a signed note must not exceed {MAX_NOTE_BYTES} bytes")
        return text


def _parse_signature_line(line: str) -> Signature:
    if not line.startswith(SIGNATURE_PREFIX):
        raise NoteError(f"a signature line starts with an em dash and a space: {line[:40]!r}")
    name, space, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
    if not space or not encoded:
        raise NoteError(f"a signature line is '— <key name> <base64>': {line[:80]!r}")
    check_key_name(name)
    raw = _b64decode(encoded, f"the signature by {name}")
    if len(raw) < 5:
        raise NoteError(f"the signature by {name} is too short")
    return Signature(name, int.from_bytes(raw[:4], "big"), raw[4:])


def parse_note(text: str | bytes) -> SignedNote:
    """Split a signed note into its text and signature lines, checking only their syntax
    (no signature is verified: use `open_note`)."""
    if isinstance(text, bytes | bytearray):
        if len(text) > MAX_NOTE_BYTES:
            raise NoteError(f"a signed note must not exceed {MAX_NOTE_BYTES} bytes")
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NoteError("a signed note must be valid UTF-8") from exc
    if not isinstance(text, str):
        raise NoteError("a signed note must be text")
    if len(_utf8(text, "the signed note")) > MAX_NOTE_BYTES:
        raise NoteError(f"a signed note must not exceed {MAX_NOTE_BYTES} bytes")
    _check_characters(text, "the signed note")
    split = text.rfind("\n\n")
    if split < 0:
        raise NoteError("a signed note needs a blank line before its signatures")
    body, block = text[: split + 1], text[split + 2 :]
    if not block or not block.endswith("\n"):
        raise NoteError("a signed note ends with signature lines, each ending with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"a note must not carry more than {MAX_SIGNATURES} signatures")
    return SignedNote(body, [_parse_signature_line(line) for line in lines])


def _known(verifiers: Iterable[Verifier]) -> dict[tuple[str, int], Verifier]:
    known: dict[tuple[str, int], Verifier] = {}
    for verifier in verifiers:
        if not isinstance(verifier, Verifier):
            raise TypeError(f"not a Verifier: {verifier!r}")
        slot = (verifier.name, verifier.key_id)
        if slot in known and known[slot] != verifier:
            raise NoteError(f"two verifier keys for {verifier.name} with key ID {verifier.key_id:08x}")
        known[slot] = verifier
    return known


def open_note(text: str | bytes, verifiers: Sequence[Verifier]) -> tuple[SignedNote, list[Signature]]:
    """Parse a signed note and verify it: returns the note (every signature line) and the
    signatures that known verifiers verified, in order, one per key.

    Raises NoteError if the note is malformed, if a signature by a known key (same name
    and key ID) does not verify, or if no known key signed it.
    """
    known = _known(verifiers)
    note = parse_note(text)
    message = note.body.encode("utf-8")
    verified: list[Signature] = []
    seen: set[tuple[str, int]] = set()
    for sig in note.signatures:
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None:
            continue  # an unknown key: ignored (a witness, a rotated key…)
        if not verifier.verify(message, sig.signature):
            raise NoteError(f"the signature by {sig.name} (key ID {sig.key_id:08x}) does not verify")
        if (sig.name, sig.key_id) not in seen:
            seen.add((sig.name, sig.key_id))
            verified.append(sig)
    if not verified:
        names = ", ".join(sorted({f"{v.name}+{v.key_id:08x}" for v in known.values()})) or "none"
        raise NoteError(f"the note carries no signature by a known key (known: {names})")
    return note, verified


def sign_note(body: str, signers: Sequence[Signer]) -> str:
    """A new signed note: `body` signed by each signer in turn."""
    if not signers:
        raise NoteError("a signed note needs at least one signer")
    return SignedNote(body, [signer.signature(body) for signer in signers]).format()


def add_signature(note_text: str | bytes, signer: Signer) -> str:
    """Cosign a signed note: the same note with `signer`'s signature line added last.

    The other signature lines are kept as they are, except an earlier signature by the
    same key (name and key ID), which the new one replaces. This does not verify the
    existing signatures: a witness opens the note with the log's key (`open_note`) first.
    """
    note = parse_note(note_text)
    kept = [sig for sig in note.signatures if (sig.name, sig.key_id) != (signer.name, signer.key_id)]
    return SignedNote(note.body, [*kept, signer.signature(note.body)]).format()


# --- checkpoints -----------------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    """A transparency log checkpoint (c2sp.org/tlog-checkpoint): the note text
    "<origin>\\n<tree size>\\n<base64 root hash>\\n" then optional extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.origin, str) or not self.origin:
            raise NoteError("a checkpoint's origin must be a non-empty string")
        if "\n" in self.origin:
            raise NoteError("a checkpoint's origin must be one line")
        _check_characters(self.origin, "the checkpoint's origin")
        _utf8(self.origin, "the checkpoint's origin")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or not 0 <= self.size < 1 << 63:
            raise NoteError(
                f"a checkpoint's tree size must be an integer in 0 … 2**63 − 1, not {self.size!r}"
            )
        if not isinstance(self.root, bytes) or len(self.root) != _HASH_SIZE:
            raise NoteError(f"a checkpoint's root hash must be {_HASH_SIZE} bytes")
        if not isinstance(self.extensions, tuple):
            raise NoteError("a checkpoint's extension lines must be a tuple")
        for line in self.extensions:
            if not isinstance(line, str) or not line or "\n" in line:
                raise NoteError("a checkpoint's extension lines must be non-empty single lines")
            _check_characters(line, "a checkpoint extension line")
            _utf8(line, "a checkpoint extension line")

    def body(self) -> str:
        lines = [self.origin, str(self.size), _b64(self.root), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, body: str) -> Checkpoint:
        """Read a checkpoint's note text (the body of a signed note, already verified)."""
        check_text(body)
        lines = body[:-1].split("\n")
        if len(lines) < 3:
            raise NoteError("a checkpoint has at least three lines: origin, tree size, root hash")
        if any(not line for line in lines):
            raise NoteError("a checkpoint has no empty line")
        origin, size_text, root_text, *extensions = lines
        # At most 2**63 - 1, as Go's tlog (int64) and PostgreSQL's bigint hold it.
        if len(size_text) > 19 or not _DECIMAL.fullmatch(size_text) or int(size_text) > _MAX_SIZE:
            raise NoteError(
                f"a checkpoint's tree size is a decimal number below 2**63 without leading zeros: {size_text!r}"
            )
        root = _b64decode(root_text, "the checkpoint's root hash")
        if len(root) != _HASH_SIZE:
            raise NoteError(f"the checkpoint's root hash is not the base64 of {_HASH_SIZE} bytes")
        return cls(origin, int(size_text), root, tuple(extensions))
