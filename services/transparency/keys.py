"""Reading an Ed25519 private key (the signed notes' and the signed envelopes') from a setting:
its PEM text, or the path of a PEM file.

One reader for every key the registry's settings name (the event key, the log's key): the
setting's name goes into each refusal, so an operator reads which variable to fix.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def read_private_key(
    value: str, *, setting: str, error: type[ValueError] = ValueError, why: str = ""
) -> Ed25519PrivateKey:
    """The key `value` holds (PEM text, starting `-----BEGIN`) or names (any other text is a
    path); `error(...)` naming `setting` if it cannot be read or is no Ed25519 private key.
    `why`: added to the message of a key of another algorithm (what needs Ed25519)."""
    text = value
    if not value.lstrip().startswith("-----BEGIN"):
        try:
            with open(value, encoding="utf-8") as handle:
                text = handle.read()
        except OSError as exc:
            raise error(f"{setting}: cannot read {value}: {exc.strerror}") from None
    try:
        loaded = serialization.load_pem_private_key(text.encode(), password=None)
    except ValueError as exc:
        raise error(f"{setting} is not a PEM private key: {exc}") from None
    if not isinstance(loaded, Ed25519PrivateKey):
        raise error(f"{setting} must be an Ed25519 key{f' ({why})' if why else ''}")
    return loaded
