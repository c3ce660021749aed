"""Tokens live at most `*_AUTH_MAX_TOKEN_LIFETIME_SECONDS`; the development token command mints
within it; production refuses the development issuer and a placeholder log origin (issue 20)."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from deploy.tokens import DEV_TOKEN_TTL, demo_token, load_private_key, main, mint
from services.common import auth
from services.common.auth import DEV_JWK, AuthConfigError, Unauthenticated
from services.common.auth.verifier import TokenVerifier
from services.projections.settings import ProjectionSettings
from services.registry.settings import RegistrySettings
from services.transparency.log import DEV_LOG_ORIGIN, LogKeyError, is_placeholder_origin, load_signer


def _verifier(**fields: object) -> TokenVerifier:
    return auth.verifier_from_settings(RegistrySettings(**fields))  # type: ignore[arg-type]


def test_the_default_maximum_is_an_hour_and_a_longer_token_is_refused() -> None:
    verifier = _verifier()
    assert verifier.max_lifetime == 3600
    assert verifier.verify(mint("short", ttl=3600)).client_id == "short"
    with pytest.raises(Unauthenticated, match="lives longer than the 3600 seconds"):
        verifier.verify(mint("long", ttl=3601))
    # Issued an hour ago, valid for another hour: two hours in all, though only one is left.
    with pytest.raises(Unauthenticated, match="lives longer"):
        verifier.verify(mint("backdated", ttl=7200, now=time.time() - 3600))


def test_without_iat_the_lifetime_is_counted_from_now() -> None:
    key = load_private_key()
    now = int(time.time())

    def token(exp: int) -> str:
        claims = {"iss": "coordreg-dev", "aud": "coordination-registry", "sub": "no-iat", "exp": exp}
        payload = {**claims, "jti": str(uuid.uuid4())}
        return jwt.encode(payload, key, algorithm="ES256", headers={"kid": DEV_JWK["kid"]})  # type: ignore[arg-type]

    verifier = _verifier()
    assert verifier.verify(token(now + 3000)).client_id == "no-iat"
    with pytest.raises(Unauthenticated, match="lives longer"):
        verifier.verify(token(now + 10 * 3600))


def test_the_maximum_is_configurable_within_a_day() -> None:
    assert _verifier(auth_max_token_lifetime_seconds=7200).verify(mint("two-hours", ttl=7200))
    for settings in (RegistrySettings, ProjectionSettings):
        for refused in (0, 59, 86401):
            with pytest.raises(ValidationError):
                settings(auth_max_token_lifetime_seconds=refused)


def test_the_development_token_command_mints_within_the_default() -> None:
    for token in (demo_token(), mint("cli-default")):
        claims = jwt.decode(token, options={"verify_signature": False})
        assert (
            claims["exp"] - claims["iat"]
            == DEV_TOKEN_TTL
            <= RegistrySettings().auth_max_token_lifetime_seconds
        )
        assert _verifier().verify(token)


def test_the_token_command_line_defaults_to_the_maximum(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["mint", "--sub", "cli-client"], ["demo"]):
        main(argv)
        claims = jwt.decode(capsys.readouterr().out.strip(), options={"verify_signature": False})
        assert claims["exp"] - claims["iat"] == DEV_TOKEN_TTL


def test_production_refuses_the_development_issuer() -> None:
    for settings in (RegistrySettings, ProjectionSettings):
        with pytest.raises(AuthConfigError, match="development issuer 'coordreg-dev'"):
            auth.verifier_from_settings(settings(environment="production"))


@pytest.mark.parametrize(
    ("origin", "placeholder"),
    [
        (DEV_LOG_ORIGIN, True),
        ("coordreg.invalid/set-per-deployment", True),
        ("log.Example.INVALID./agreements", True),
        ("registry.example.gov.vn/agreements", False),
        ("invalid.example.gov.vn/agreements", False),
    ],
)
def test_production_refuses_a_placeholder_log_origin(origin: str, placeholder: bool) -> None:
    assert is_placeholder_origin(origin) is placeholder
    key = (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        .decode()
    )
    if placeholder:
        with pytest.raises(LogKeyError, match="placeholder log origin"):
            load_signer(environment="production", origin=origin, key_pem=key)
    else:
        assert load_signer(environment="production", origin=origin, key_pem=key).origin == origin
    # Development keeps taking it: its log proves nothing anyway.
    assert load_signer(environment="development", origin=origin, key_pem=key).origin == origin
