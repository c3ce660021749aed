"""A JWKS document → the keys tokens may be verified with; anything unsafe is refused.

Only public asymmetric signing keys, each with a `kid` (tokens choose their key by it), an
algorithm that fits its key type and is among the accepted ones, and RSA keys of at least
2048 bits. A key with private members is refused: the configuration must never hold them.

A key published for encryption (`"use": "enc"`) is left out rather than refused: an identity
provider's JWKS lists its encryption keys next to its signing keys (Keycloak's does), and the
operator should be able to configure that document as it is published. It can verify nothing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from services.common.auth import AuthConfigError

# Only signatures made with a private key; never `none`, never an HMAC (whose "secret"
# could be the published public key).
ASYMMETRIC = frozenset(
    {"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"}
)
_KTY_ALGORITHMS = {
    "EC": {"ES256", "ES384", "ES512"},
    "RSA": {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"},
    "OKP": {"EdDSA"},
}
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "k"})
_THUMBPRINT_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n"), "OKP": ("crv", "kty", "x")}
MIN_RSA_BITS = 2048


def thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url): the key itself, whatever its kid."""
    members = _THUMBPRINT_MEMBERS.get(str(jwk.get("kty")))
    if members is None:
        raise AuthConfigError(f"unsupported key type {jwk.get('kty')!r}")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass(frozen=True)
class TrustedKey:
    kid: str
    algorithm: str
    key: jwt.PyJWK
    thumbprint: str


def parse_jwks(document: Any, algorithms: frozenset[str]) -> dict[str, TrustedKey]:
    """A JWKS (`{"keys": [...]}`, or one JWK) → the verification keys by kid; refuses anything unsafe."""
    if isinstance(document, dict) and "kty" in document:
        document = {"keys": [document]}
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise AuthConfigError('the JWKS must be a JSON object {"keys": [...]}')
    keys: dict[str, TrustedKey] = {}
    for index, jwk in enumerate(document["keys"]):
        where = f"JWKS key {index}"
        if not isinstance(jwk, dict):
            raise AuthConfigError(f"{where} is not an object")
        kid = jwk.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthConfigError(f"{where} has no kid: tokens choose their key by kid")
        where = f"JWKS key {kid!r}"
        if kid in keys:
            raise AuthConfigError(f"{where} appears twice")
        kty = jwk.get("kty")
        if kty not in _KTY_ALGORITHMS:
            raise AuthConfigError(f"{where}: key type {kty!r} is not an asymmetric signing key")
        if _PRIVATE_MEMBERS & jwk.keys():
            raise AuthConfigError(f"{where} holds private key material; configure public keys only")
        if jwk.get("use") == "enc":
            continue  # the provider's encryption key: no token is verified with it
        if jwk.get("use", "sig") != "sig":
            raise AuthConfigError(f"{where} is not a signing key (use={jwk.get('use')!r})")
        try:
            parsed = jwt.PyJWK(jwk)
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, KeyError) as exc:
            raise AuthConfigError(f"{where} is not a valid key: {exc}") from exc
        algorithm = parsed.algorithm_name
        if algorithm not in _KTY_ALGORITHMS[kty]:
            raise AuthConfigError(f"{where}: algorithm {algorithm!r} does not fit key type {kty}")
        if algorithm not in algorithms:
            raise AuthConfigError(f"{where}: algorithm {algorithm} is not in the accepted algorithms")
        if kty == "RSA" and getattr(parsed.key, "key_size", 0) < MIN_RSA_BITS:
            raise AuthConfigError(f"{where}: RSA keys need at least {MIN_RSA_BITS} bits")
        keys[kid] = TrustedKey(kid, algorithm, parsed, thumbprint(jwk))
    return keys


def parse_algorithms(value: str) -> frozenset[str]:
    names = frozenset(re.split(r"[ \t\r\n,]+", value.strip())) - {""}
    refused = names - ASYMMETRIC
    if refused:
        raise AuthConfigError(
            f"refused token algorithms {sorted(refused)}: only asymmetric ones are accepted "
            f"({', '.join(sorted(ASYMMETRIC))})"
        )
    if not names:
        raise AuthConfigError("no token algorithm is accepted")
    return names
