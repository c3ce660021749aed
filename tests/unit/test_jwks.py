"""The trusted keys read from a JWKS document (services/common/auth/jwks.py): an identity
provider's published document, with its encryption key beside its signing key, is taken as it is."""

from __future__ import annotations

import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from services.common.auth import DEV_JWK, AuthConfigError
from services.common.auth.jwks import ASYMMETRIC, parse_jwks


def rsa_jwk(kid: str, **members: str) -> dict[str, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key))
    return {**jwk, "kid": kid, **members}


def test_a_providers_encryption_key_is_left_out_and_its_signing_key_kept() -> None:
    # As Keycloak publishes its realm keys: one RS256 signing key, one RSA-OAEP encryption key.
    published = {
        "keys": [rsa_jwk("signing", alg="RS256", use="sig"), rsa_jwk("encryption", alg="RSA-OAEP", use="enc")]
    }
    keys = parse_jwks(published, ASYMMETRIC)
    assert list(keys) == ["signing"]
    assert keys["signing"].algorithm == "RS256"


def test_a_document_of_encryption_keys_only_trusts_nothing() -> None:
    assert parse_jwks({"keys": [rsa_jwk("encryption", alg="RSA-OAEP", use="enc")]}, ASYMMETRIC) == {}


@pytest.mark.parametrize(
    ("jwk", "message"),
    [
        ({**DEV_JWK, "use": "enc", "d": "x"}, "private key material"),  # a leak, whatever its use
        ({**DEV_JWK, "use": "other"}, "not a signing key"),
    ],
)
def test_other_uses_and_private_material_are_still_refused(jwk: dict[str, Any], message: str) -> None:
    with pytest.raises(AuthConfigError, match=message):
        parse_jwks({"keys": [jwk]}, ASYMMETRIC)
