"""The registry's transparency log: which key signs its checkpoints, and the tree arithmetic the
store needs around the pure Merkle functions (services/transparency/merkle.py).

Keys follow the JWKS practice (docs/SECURITY.md): in development, with no key configured, the
development key below signs, and it is public on purpose (anyone can sign with it, so its
checkpoints prove nothing); in production the registry refuses to start without a key of its
own or with this one. Rotation: the retired keys' verifier keys stay published
(GET /v1/log/keys), so the checkpoints they signed still verify.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.transparency import merkle, note
from services.transparency.keys import read_private_key
from services.transparency.policy import Policy, PolicyError, parse_policy

# The development signing key's seed: public on purpose (deploy/dev-keys/README.md).
DEV_LOG_KEY_SEED = bytes.fromhex("43682d9c04a7bafc3dc41b7d325afc7ec210ddb1077e949083a4c5d429b54377")
DEV_LOG_ORIGIN = "dev.coordreg.invalid/agreements-log"
# RFC 2606 reserves `.invalid`: the development origin and the Kubernetes base's placeholder
# (`coordreg.invalid/set-per-deployment`) live there, and no real log's name can.
PLACEHOLDER_DOMAIN = ".invalid"


class LogKeyError(ValueError):
    """The log's key configuration cannot be used (the message says why)."""


def frontier_indices(size: int) -> list[int]:
    """The stored-hash indices of the complete subtrees a tree of `size` leaves is made of,
    largest first: all that appending to it, or computing its root, needs to read."""
    indices = []
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            indices.append(merkle.stored_hash_index(level, (size >> level) - 1))
    return indices


def _raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


DEV_PUBLIC_KEY = _raw_public(Ed25519PrivateKey.from_private_bytes(DEV_LOG_KEY_SEED))
# What a verifier pins for the development log (Go note format): the audit tool's and the
# console's default, which proves nothing in production.
DEV_LOG_VERIFIER_KEY = note.verifier_key(DEV_LOG_ORIGIN, DEV_PUBLIC_KEY)


@dataclass(frozen=True)
class CheckpointSigner:
    origin: str
    name: str
    key: Ed25519PrivateKey

    @property
    def verifier_key(self) -> str:
        return note.verifier_key(self.name, _raw_public(self.key))

    def sign(self, size: int, root: bytes) -> str:
        """The signed note of the tree head (C2SP tlog-checkpoint)."""
        body = note.Checkpoint(self.origin, size, root).body()
        return note.sign_note(body, [note.Signer(self.name, self.key)])


def load_signer(*, environment: str, origin: str, key_pem: str, key_name: str = "") -> CheckpointSigner:
    """The signer the settings name: `key_pem` is a PEM Ed25519 private key (its text, or a path
    to it); empty means the development key, which production refuses."""
    if not key_pem:
        if environment == "production":
            raise LogKeyError(
                "production needs REGISTRY_LOG_SIGNING_KEY: an Ed25519 private key (PEM) of its own"
            )
        key = Ed25519PrivateKey.from_private_bytes(DEV_LOG_KEY_SEED)
        return CheckpointSigner(origin or DEV_LOG_ORIGIN, key_name or (origin or DEV_LOG_ORIGIN), key)
    loaded = read_private_key(
        key_pem, setting="REGISTRY_LOG_SIGNING_KEY", error=LogKeyError, why="C2SP signed notes"
    )
    if environment == "production" and _raw_public(loaded) == DEV_PUBLIC_KEY:
        raise LogKeyError("production refuses the development log key (it is public)")
    if not origin:
        raise LogKeyError("REGISTRY_LOG_ORIGIN must name the log (e.g. registry.example.gov.vn/agreements)")
    if environment == "production" and is_placeholder_origin(origin):
        raise LogKeyError(
            f"production refuses the placeholder log origin {origin!r}: set REGISTRY_LOG_ORIGIN to "
            "the log's own name (e.g. registry.example.gov.vn/agreements)"
        )
    return CheckpointSigner(origin, key_name or origin, loaded)


def is_placeholder_origin(origin: str) -> bool:
    """The development log's name, or any name under the reserved `.invalid` domain."""
    host = origin.split("/", 1)[0].rstrip(".").lower()
    return origin == DEV_LOG_ORIGIN or host == PLACEHOLDER_DOMAIN[1:] or host.endswith(PLACEHOLDER_DOMAIN)


def read_policy(value: str, setting: str) -> Policy | None:
    """The witnessing policy a setting holds (its text, when it has a line break) or names (a
    path); None when empty. LogKeyError, naming the setting, if it cannot be read or does not
    follow C2SP tlog-policy."""
    if not value.strip():
        return None
    text = value
    if "\n" not in value:
        try:
            with open(value, encoding="utf-8") as handle:
                text = handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise LogKeyError(f"{setting}: cannot read {value}: {exc}") from None
    try:
        return parse_policy(text)
    except PolicyError as exc:
        raise LogKeyError(f"{setting}: {exc}") from None


def load_policy(value: str, signer: CheckpointSigner) -> Policy | None:
    """REGISTRY_LOG_POLICY's policy (read_policy), which must name this log's key: a policy of
    another log would judge checkpoints it never saw."""
    policy = read_policy(value, "REGISTRY_LOG_POLICY")
    if policy is None:
        return None
    own = note.parse_verifier_key(signer.verifier_key)
    if own not in policy.logs:
        raise LogKeyError(f"REGISTRY_LOG_POLICY does not name this log's key {signer.verifier_key}")
    return policy
