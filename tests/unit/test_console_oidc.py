"""The console's OpenID Connect client in its pure parts (services/console/oidc.py) and its
encrypted session cookie (services/console/sessions.py): no provider is reached here (the real
one, Keycloak, is in tests/e2e/test_console_oidc.py)."""

from __future__ import annotations

import base64
import json
import re
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from services.common.auth.jwks import ASYMMETRIC, parse_jwks
from services.console import oidc, sessions
from services.console.app import create_app
from services.console.oidc import Provider, ProviderUnavailable, SignInRefused
from services.console.settings import ConsoleSettings

SECRET = "s" * 40
ISSUER = "https://idp.example/realms/coordreg"
CLIENT_ID = "coordreg-console"
PERSON = sessions.Person(
    subject="bd97b1ee-2fd5-48ba-b5a7-45a094afdf3c", name="Trần Văn Bình", party_ids=("snv-phu-tho",)
)
PROVIDER = Provider(
    issuer=ISSUER,
    authorization_endpoint=f"{ISSUER}/protocol/openid-connect/auth",
    token_endpoint=f"{ISSUER}/protocol/openid-connect/token",
    jwks_uri=f"{ISSUER}/protocol/openid-connect/certs",
    end_session_endpoint=f"{ISSUER}/protocol/openid-connect/logout",
)
SETTINGS = ConsoleSettings(session_secret=SECRET, oidc_issuer=ISSUER, oidc_client_id=CLIENT_ID)


def keycloak_sized_tokens() -> sessions.Tokens:
    # The sizes Keycloak 26 gives the realm of deploy/keycloak/ (950 and 662 characters).
    return sessions.Tokens(access_token="a" * 950, refresh_token="r" * 662, expires_at=int(time.time()) + 300)


# --- the session cookie ------------------------------------------------------------------------


def test_the_cookie_is_encrypted_and_round_trips() -> None:
    session = sessions.new_session(3600).signed_in_as(PERSON, 3600, keycloak_sized_tokens())
    cookie = sessions.encode(session, SECRET)
    assert sessions.decode(cookie, SECRET) == session
    # Nothing of it can be read without the secret: not the tokens, not who it is.
    sealed = base64.urlsafe_b64decode(cookie + "=" * (-len(cookie) % 4))
    for visible in (b"aaaaaaaa", b"rrrrrrrr", PERSON.subject.encode(), b"snv-phu-tho", b"csrf"):
        assert visible not in sealed
    # Two encodings of one session differ (a fresh nonce each time), and both decode.
    assert sessions.encode(session, SECRET) != cookie
    # Within what a browser keeps, with room for the name and attributes.
    assert len(cookie) <= sessions.MAX_COOKIE_CHARS


@pytest.mark.parametrize("position", [0, 5, 20, -1])
def test_a_changed_byte_or_another_secret_is_refused(position: int) -> None:
    session = sessions.new_session(3600).signed_in_as(PERSON, 3600, keycloak_sized_tokens())
    sealed = bytearray(base64.urlsafe_b64decode(sessions.encode(session, SECRET) + "=="))
    sealed[position] ^= 0x01
    forged = base64.urlsafe_b64encode(bytes(sealed)).decode().rstrip("=")
    assert sessions.decode(forged, SECRET) is None
    assert sessions.decode(sessions.encode(session, "another secret " * 3), SECRET) is None


def test_a_forged_session_made_without_the_secret_is_refused() -> None:
    # What someone without the key could make: the JSON in clear, signed, or truncated.
    plain = sessions.new_session(3600).signed_in_as(PERSON, 3600).model_dump_json().encode()
    for forged in (
        base64.urlsafe_b64encode(plain).decode(),
        base64.urlsafe_b64encode(b"\0" * 12 + plain + b"\0" * 16).decode(),
        "x" * 10,
        "%%%",
        "A" * 5000,
    ):
        assert sessions.decode(forged, SECRET) is None


def test_a_csrf_token_with_any_characters_is_compared_not_crashed_on() -> None:
    session = sessions.new_session(60)
    assert not sessions.csrf_matches(session, "Tiếng Việt")  # a TypeError with str compare_digest
    assert sessions.csrf_matches(session, session.csrf)


# --- PKCE, state, nonce ------------------------------------------------------------------------


def test_the_pkce_challenge_is_rfc_7636s() -> None:
    # RFC 7636, Appendix B.
    assert oidc.pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == (
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )


def test_each_sign_in_asks_with_a_fresh_state_nonce_and_s256_challenge() -> None:
    flow = oidc.new_flow()
    assert re.fullmatch(r"[A-Za-z0-9_-]{43,128}", flow.code_verifier)
    assert len({flow.state, flow.nonce, flow.code_verifier, oidc.new_flow().state}) == 4
    url = oidc.authorization_url(PROVIDER, SETTINGS, "http://127.0.0.1:8005/dang-nhap/xac-nhan", flow)
    assert url.startswith(PROVIDER.authorization_endpoint + "?")
    query = {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}
    assert query == {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": "http://127.0.0.1:8005/dang-nhap/xac-nhan",
        "scope": "openid progress:report agreements:read",
        "state": flow.state,
        "nonce": flow.nonce,
        "code_challenge": oidc.pkce_challenge(flow.code_verifier),
        "code_challenge_method": "S256",
        "ui_locales": "vi",
    }
    assert flow.code_verifier not in url  # only its hash leaves the console


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"code": "c"}, "state"),
        ({"state": "other", "code": "c"}, "state"),
        ({"state": "{state}", "code": "c", "iss": "https://evil.example"}, "another issuer"),
        ({"state": "{state}", "error": "access_denied"}, "refused the sign-in: access_denied"),
        ({"state": "{state}"}, "no code"),
        ({"state": "{state}", "code": ""}, "no code"),
    ],
)
def test_a_callback_that_does_not_answer_this_sign_in_is_refused(
    params: dict[str, str], message: str
) -> None:
    flow = oidc.new_flow()
    params = {name: value.replace("{state}", flow.state) for name, value in params.items()}
    with pytest.raises(SignInRefused, match=message):
        oidc.checked_callback(flow, params, ISSUER)


def test_a_callback_without_a_sign_in_under_way_is_refused_and_the_right_one_gives_its_code() -> None:
    with pytest.raises(SignInRefused, match="no sign-in is under way"):
        oidc.checked_callback(None, {"state": "s", "code": "c"}, ISSUER)
    flow = oidc.new_flow()
    assert oidc.checked_callback(flow, {"state": flow.state, "code": "c", "iss": ISSUER}, ISSUER) == "c"


# --- the ID token ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def jwks_of(key: rsa.RSAPrivateKey, kid: str = "k1") -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {"keys": [{**jwk, "kid": kid, "alg": "RS256", "use": "sig"}]}


def id_token(key: rsa.RSAPrivateKey, kid: str = "k1", algorithm: str = "RS256", **claims: Any) -> str:
    now = int(time.time())
    body = {
        "iss": ISSUER,
        "sub": PERSON.subject,
        "aud": CLIENT_ID,
        "azp": CLIENT_ID,
        "exp": now + 300,
        "iat": now,
        "nonce": "n-1",
        "at_hash": oidc.at_hash("the-access-token", "RS256"),
        "given_name": "Bình",
        "family_name": "Trần Văn",
        "party_ids": ["snv-phu-tho"],
        **claims,
    }
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm, headers={"kid": kid})


def verify(token: str, key: rsa.RSAPrivateKey, nonce: str | None = "n-1") -> dict[str, Any]:
    return oidc.verified_id_token(
        token,
        parse_jwks(jwks_of(key), ASYMMETRIC),
        issuer=ISSUER,
        client_id=CLIENT_ID,
        nonce=nonce,
        access_token="the-access-token",
    )


def test_a_good_id_token_gives_the_person(signing_key: rsa.RSAPrivateKey) -> None:
    claims = verify(id_token(signing_key), signing_key)
    assert oidc.person_of(claims) == PERSON
    # A refresh's ID token need not repeat the nonce.
    assert verify(id_token(signing_key, nonce=None), signing_key, nonce=None)["sub"] == PERSON.subject


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"nonce": "another sign-in's"}, "nonce"),
        ({"nonce": None}, "nonce"),
        ({"aud": "another-client"}, "does not verify"),
        ({"aud": [CLIENT_ID, "another"], "azp": "another"}, "azp"),
        ({"azp": "another-client"}, "azp"),
        ({"iss": "https://evil.example/realms/coordreg"}, "does not verify"),
        ({"exp": int(time.time()) - 120}, "does not verify"),
        ({"iat": None}, "does not verify"),
        ({"at_hash": oidc.at_hash("another-access-token", "RS256")}, "at_hash"),
    ],
)
def test_an_id_token_that_does_not_hold_is_refused(
    signing_key: rsa.RSAPrivateKey, claims: dict[str, Any], message: str
) -> None:
    with pytest.raises(SignInRefused, match=message):
        verify(id_token(signing_key, **claims), signing_key)


def test_an_id_token_signed_by_another_key_or_way_is_refused(signing_key: rsa.RSAPrivateKey) -> None:
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(SignInRefused, match="does not verify"):
        verify(id_token(forger), signing_key)  # the provider's kid, someone else's key
    with pytest.raises(SignInRefused, match="not in the provider's JWKS"):
        verify(id_token(signing_key, kid="k2"), signing_key)
    with pytest.raises(SignInRefused, match="signed with 'PS256'"):
        verify(id_token(signing_key, algorithm="PS256"), signing_key)
    with pytest.raises(SignInRefused, match="not a JWT"):
        verify("not.a.jwt", signing_key)


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"sub": "has space"}, "sub"),
        ({"sub": "x" * 201}, "sub"),
        ({"party_ids": "snv-phu-tho"}, "party_ids"),
        ({"party_ids": ["Sở Nội vụ"]}, "party_ids"),
    ],
)
def test_a_person_the_registry_would_refuse_is_not_signed_in(claims: dict[str, Any], message: str) -> None:
    with pytest.raises(SignInRefused, match=message):
        oidc.person_of({"sub": PERSON.subject, "party_ids": [], **claims})


def test_the_name_shown_is_the_vietnamese_order_else_what_the_provider_has() -> None:
    assert (
        oidc.person_of({"sub": "s", "family_name": "Trần Văn", "given_name": "Bình"}).name == "Trần Văn Bình"
    )
    assert oidc.person_of({"sub": "s", "name": "Bình Trần"}).name == "Bình Trần"
    assert oidc.person_of({"sub": "s", "preferred_username": "binh"}).name == "binh"
    assert oidc.person_of({"sub": "s"}) == sessions.Person(subject="s", name="s", party_ids=())


# --- token responses and discovery -------------------------------------------------------------


def test_a_token_response_gives_tokens_and_a_refresh_may_keep_the_refresh_token() -> None:
    answer = {"access_token": "a", "token_type": "Bearer", "expires_in": 300, "refresh_token": "r"}
    tokens = oidc.tokens_of(answer, 1000)
    assert tokens == sessions.Tokens(access_token="a", refresh_token="r", expires_at=1300)
    renewed = oidc.tokens_of({"access_token": "b", "token_type": "bearer"}, 2000, previous=tokens)
    assert renewed == sessions.Tokens(
        access_token="b", refresh_token="r", expires_at=2000 + oidc.DEFAULT_LIFETIME_SECONDS
    )
    assert oidc.needs_renewal(tokens, now=1300 - oidc.RENEW_MARGIN_SECONDS)
    assert not oidc.needs_renewal(tokens, now=1300 - oidc.RENEW_MARGIN_SECONDS - 1)
    for bad in (
        {"token_type": "Bearer"},
        {"access_token": "a", "token_type": "mac"},
        {"access_token": "a" * 9000},
    ):
        with pytest.raises(SignInRefused):
            oidc.tokens_of(bad, 1000)


def test_a_discovery_document_of_another_issuer_or_without_s256_is_not_taken() -> None:
    metadata = {
        "issuer": ISSUER,
        "authorization_endpoint": PROVIDER.authorization_endpoint,
        "token_endpoint": PROVIDER.token_endpoint,
        "jwks_uri": PROVIDER.jwks_uri,
        "end_session_endpoint": PROVIDER.end_session_endpoint,
        "code_challenge_methods_supported": ["plain", "S256"],
    }
    assert Provider.from_metadata(metadata, ISSUER) == PROVIDER
    for changes, message in (
        ({"issuer": "https://evil.example"}, "names the issuer"),
        ({"code_challenge_methods_supported": ["plain"]}, "S256"),
        ({"token_endpoint": None}, "token_endpoint"),
    ):
        with pytest.raises(ProviderUnavailable, match=message):
            Provider.from_metadata({**metadata, **changes}, ISSUER)


# --- the callback page -------------------------------------------------------------------------


async def test_a_forged_or_stale_callback_signs_nobody_in() -> None:
    transport = httpx.ASGITransport(app=create_app(SETTINGS))
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as console:
        # No sign-in under way in this browser: refused before the provider is asked anything.
        answer = await console.get("/dang-nhap/xac-nhan", params={"state": "s", "code": "c"})
        assert answer.status_code == 400
        assert "Đăng nhập không thành công" in answer.text
        assert 'href="/dang-nhap"' in answer.text
        # Signing out posts a form answered by a redirect to the provider: form-action allows it.
        assert "form-action 'self' https://idp.example;" in answer.headers["content-security-policy"]
        # A session with a sign-in under way, and a callback with another state.
        flow = oidc.new_flow()
        cookie = sessions.encode(sessions.new_session(600).signing_in(flow), SECRET)
        console.cookies.set(sessions.COOKIE, cookie)
        answer = await console.get("/dang-nhap/xac-nhan", params={"state": "forged", "code": "c"})
        assert answer.status_code == 400
        left = sessions.decode(answer.cookies[sessions.COOKIE], SECRET)
        assert left is not None and left.person is None and left.flow is None  # the flow is spent
        # Nobody is signed in: the work page sends to the sign-in.
        assert (await console.get("/")).headers["location"] == "/dang-nhap"
