"""The console as an OpenID Connect client of the province's identity provider
(docs/adr/0019-console-openid-connect.md): the authorization code flow with PKCE (S256), state
and nonce; the ID token verified; the person's access token renewed with the refresh token.

- Discovery: `<issuer>/.well-known/openid-configuration`, whose `issuer` must be the configured
  one (OpenID Connect Discovery §4.3); fetched once per process, its keys again when an ID token
  names a key not seen yet (the provider rotated).
- Sign-in: a fresh state, nonce and PKCE verifier, kept in the encrypted session cookie until
  the browser comes back (`SignInFlow`); the callback must bring the same state (and, when the
  provider names itself with RFC 9207's `iss`, the same issuer), then the code is exchanged with
  the verifier and the client's credentials.
- The ID token: signature by a key of the provider's JWKS (the algorithms and key rules of
  `services.common.auth.jwks`), `iss`, `aud` (this client), `azp`, `exp`/`iat` (with leeway),
  `nonce`, and `at_hash` when present (OpenID Connect Core §3.1.3.7), with PyJWT, the library
  the services verify their tokens with.
- The person: `sub` (the actor the registry will record), a name, and `party_ids`.

HTTP goes through one httpx client; what the provider answers is checked before it is used.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import jwt
import structlog

from services.common.auth import AuthConfigError
from services.common.auth.jwks import ASYMMETRIC, TrustedKey, parse_jwks
from services.common.patterns import CLIENT_ID, SLUG, full_match
from services.console.sessions import Person, SignInFlow, Tokens
from services.console.settings import ConsoleSettings

log = structlog.get_logger(__name__)

DISCOVERY = "/.well-known/openid-configuration"
# Where the provider sends the browser back after sign-in and after sign-out.
CALLBACK_PATH = "/dang-nhap/xac-nhan"
SIGNED_OUT_PATH = "/da-dang-xuat"
# An access token this close to its expiry is renewed before it is sent: the call it goes with
# must not see it expire (the services allow 30 s of clock skew, not more).
RENEW_MARGIN_SECONDS = 60
LEEWAY_SECONDS = 30  # clock skew allowed on the ID token's exp and iat
# A token response without expires_in (RFC 6749 makes it only RECOMMENDED) is renewed after this.
DEFAULT_LIFETIME_SECONDS = 300
# The registry refuses longer tokens (services/common/auth/verifier.py MAX_TOKEN_CHARS).
MAX_TOKEN_CHARS = 8192
MAX_PARTY_IDS = 1000
# An ID token naming an unknown key fetches the JWKS again, at most this often.
KEYS_REFETCH_SECONDS = 60.0


class ProviderUnavailable(Exception):
    """The identity provider could not be reached, or answered what a provider does not: the
    person is told to try again later (503), nothing is signed in or out."""


class SignInRefused(Exception):
    """What came back from the provider cannot sign anyone in (a stale or forged callback, an
    error the provider reported, an ID token that does not verify): the person starts again."""


@dataclass(frozen=True)
class Provider:
    """The endpoints of the provider's discovery document that the console uses."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    end_session_endpoint: str | None

    @classmethod
    def from_metadata(cls, metadata: Any, issuer: str) -> Provider:
        if not isinstance(metadata, dict):
            raise ProviderUnavailable("the discovery document is not a JSON object")
        if metadata.get("issuer") != issuer:
            # Discovery §4.3: a document naming another issuer is not this provider's.
            raise ProviderUnavailable(f"the discovery document names the issuer {metadata.get('issuer')!r}")
        methods = metadata.get("code_challenge_methods_supported")
        if isinstance(methods, list) and "S256" not in methods:
            raise ProviderUnavailable("the provider does not offer PKCE with S256")
        endpoints = {}
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            value = metadata.get(name)
            if not isinstance(value, str) or not value.startswith(("https://", "http://")):
                raise ProviderUnavailable(f"the discovery document has no {name}")
            endpoints[name] = value
        end_session = metadata.get("end_session_endpoint")
        return cls(
            issuer=issuer,
            end_session_endpoint=end_session if isinstance(end_session, str) else None,
            **endpoints,
        )


def pkce_challenge(verifier: str) -> str:
    """RFC 7636 §4.2, S256: base64url(SHA-256(verifier)) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def new_flow() -> SignInFlow:
    # 32 random bytes each; the verifier's 64 give 86 characters (RFC 7636 allows 43 to 128).
    return SignInFlow(
        state=secrets.token_urlsafe(32),
        nonce=secrets.token_urlsafe(32),
        code_verifier=secrets.token_urlsafe(64),
    )


def authorization_url(
    provider: Provider, settings: ConsoleSettings, redirect_uri: str, flow: SignInFlow
) -> str:
    query = {
        "response_type": "code",
        "client_id": settings.oidc_client_id,
        "redirect_uri": redirect_uri,
        "scope": settings.oidc_scope,
        "state": flow.state,
        "nonce": flow.nonce,
        "code_challenge": pkce_challenge(flow.code_verifier),
        "code_challenge_method": "S256",
        "ui_locales": "vi",
    }
    separator = "&" if "?" in provider.authorization_endpoint else "?"
    return f"{provider.authorization_endpoint}{separator}{urlencode(query)}"


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def checked_callback(flow: SignInFlow | None, params: Mapping[str, str], issuer: str) -> str:
    """The authorization code of a callback that answers this session's sign-in, else SignInRefused."""
    if flow is None:
        raise SignInRefused("no sign-in is under way in this session (expired, or another tab finished it)")
    if not _same(params.get("state", ""), flow.state):
        raise SignInRefused("the callback's state is not this session's")
    if "iss" in params and params["iss"] != issuer:
        # RFC 9207: the answer comes from another provider (a mix-up attack).
        raise SignInRefused(f"the callback names another issuer {params['iss']!r}")
    if "error" in params:
        raise SignInRefused(f"the provider refused the sign-in: {params['error']}")
    code = params.get("code", "")
    if not code:
        raise SignInRefused("the callback has no code")
    return code


def at_hash(access_token: str, algorithm: str) -> str:
    """OpenID Connect Core §3.1.3.6: the left half of the access token's hash, by the ID token's algorithm."""
    digest = jwt.get_algorithm_by_name(algorithm).compute_hash_digest(access_token.encode("ascii"))
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode("ascii")


def verified_id_token(
    id_token: str,
    keys: Mapping[str, TrustedKey],
    *,
    issuer: str,
    client_id: str,
    nonce: str | None,
    access_token: str | None,
) -> dict[str, Any]:
    """The ID token's claims, once it verifies (OpenID Connect Core §3.1.3.7); else SignInRefused.

    `nonce` None: a token from a refresh, which need not repeat it (§12.2)."""
    try:
        header = jwt.get_unverified_header(id_token)
    except jwt.PyJWTError:
        raise SignInRefused("the ID token is not a JWT") from None
    algorithm, kid = header.get("alg"), header.get("kid")
    trusted = keys.get(kid) if isinstance(kid, str) else None
    if trusted is None:
        raise SignInRefused(f"the ID token's key {kid!r} is not in the provider's JWKS")
    if algorithm != trusted.algorithm:
        raise SignInRefused(f"the ID token is signed with {algorithm!r}, its key with {trusted.algorithm}")
    try:
        claims: dict[str, Any] = jwt.decode(
            id_token,
            trusted.key.key,
            algorithms=[trusted.algorithm],
            audience=client_id,
            issuer=issuer,
            leeway=LEEWAY_SECONDS,
            options={"require": ["iss", "sub", "aud", "exp", "iat"]},
        )
    except jwt.PyJWTError as exc:
        raise SignInRefused(f"the ID token does not verify: {exc}") from None
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    azp = claims.get("azp")
    if (len(audiences) > 1 or azp is not None) and azp != client_id:
        raise SignInRefused(f"the ID token was issued to {azp!r} (azp), not to this client")
    if nonce is not None and not (isinstance(claims.get("nonce"), str) and _same(claims["nonce"], nonce)):
        raise SignInRefused("the ID token's nonce is not this sign-in's")
    if access_token is not None and "at_hash" in claims:
        expected = at_hash(access_token, algorithm)
        if not (isinstance(claims["at_hash"], str) and _same(claims["at_hash"], expected)):
            raise SignInRefused("the ID token's at_hash does not match the access token")
    return claims


def person_of(claims: Mapping[str, Any]) -> Person:
    """Who signed in: the ID token's `sub`, a name to show, and the parties they act for."""
    sub = claims.get("sub")
    if not isinstance(sub, str) or not full_match(CLIENT_ID, sub):
        # The registry would refuse this subject (services/common/auth/verifier.py).
        raise SignInRefused("the ID token's sub is not 1-200 printable ASCII characters")
    party_ids = claims.get("party_ids", [])
    if (
        not isinstance(party_ids, list)
        or len(party_ids) > MAX_PARTY_IDS
        or not all(isinstance(p, str) and full_match(SLUG, p) for p in party_ids)
    ):
        raise SignInRefused("the ID token's party_ids is not a list of party ids")
    family, given = claims.get("family_name"), claims.get("given_name")
    # Vietnamese names are written family name first: "Trần Văn" + "Bình".
    if isinstance(family, str) and isinstance(given, str) and family and given:
        name = f"{family} {given}"
    else:
        name = next(
            (v for v in (claims.get("name"), claims.get("preferred_username")) if isinstance(v, str) and v),
            sub,
        )
    return Person(subject=sub, name=name[:200], party_ids=tuple(dict.fromkeys(party_ids)))


def tokens_of(answer: Mapping[str, Any], now: float, previous: Tokens | None = None) -> Tokens:
    """The tokens of a token endpoint's answer (RFC 6749 §5.1); a refresh that brings no new
    refresh token keeps the previous one (§6)."""
    access_token = answer.get("access_token")
    if not isinstance(access_token, str) or not 0 < len(access_token) <= MAX_TOKEN_CHARS:
        raise SignInRefused("the token response has no usable access_token")
    if str(answer.get("token_type", "")).lower() != "bearer":
        raise SignInRefused(f"the token response's token_type is {answer.get('token_type')!r}, not Bearer")
    expires_in = answer.get("expires_in", DEFAULT_LIFETIME_SECONDS)
    if isinstance(expires_in, bool) or not isinstance(expires_in, int) or expires_in <= 0:
        expires_in = DEFAULT_LIFETIME_SECONDS
    refresh_token = answer.get("refresh_token")
    if not isinstance(refresh_token, str) or not refresh_token:
        refresh_token = previous.refresh_token if previous is not None else None
    return Tokens(access_token=access_token, refresh_token=refresh_token, expires_at=int(now) + expires_in)


class OpenIdConnect:
    """One provider, as the console's settings name it; one per application (its lifespan)."""

    def __init__(self, settings: ConsoleSettings, http: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self.issuer = settings.oidc_issuer
        self.http = http or httpx.AsyncClient(timeout=settings.request_timeout_seconds)
        self._provider: Provider | None = None
        self._keys: dict[str, TrustedKey] = {}
        self._keys_fetched = 0.0
        self._lock = asyncio.Lock()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def _get(self, url: str) -> Any:
        try:
            response = await self.http.get(url, headers={"Accept": "application/json"})
            response.raise_for_status()
            return response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ProviderUnavailable(f"GET {url}: {exc}") from None

    async def provider(self) -> Provider:
        if self._provider is None:
            async with self._lock:
                if self._provider is None:
                    metadata = await self._get(self.issuer.rstrip("/") + DISCOVERY)
                    self._provider = Provider.from_metadata(metadata, self.issuer)
        return self._provider

    async def keys(self, *, refetch: bool = False) -> dict[str, TrustedKey]:
        """The provider's signing keys; fetched again when asked (a kid not seen yet), at most
        every KEYS_REFETCH_SECONDS."""
        provider = await self.provider()
        async with self._lock:
            stale = refetch and time.monotonic() - self._keys_fetched >= KEYS_REFETCH_SECONDS
            if not self._keys or stale:
                try:
                    self._keys = parse_jwks(await self._get(provider.jwks_uri), ASYMMETRIC)
                except AuthConfigError as exc:
                    raise ProviderUnavailable(f"the provider's JWKS is not usable: {exc}") from None
                self._keys_fetched = time.monotonic()
        return self._keys

    async def _verified(
        self, id_token: str, *, nonce: str | None, access_token: str | None
    ) -> dict[str, Any]:
        keys = await self.keys()
        kid = _kid(id_token)
        if kid is not None and kid not in keys:
            keys = await self.keys(refetch=True)
        return verified_id_token(
            id_token,
            keys,
            issuer=self.issuer,
            client_id=self.settings.oidc_client_id,
            nonce=nonce,
            access_token=access_token,
        )

    async def start(self, redirect_uri: str) -> tuple[str, SignInFlow]:
        """Where to send the browser to sign in, and what to keep until it comes back."""
        flow = new_flow()
        return authorization_url(await self.provider(), self.settings, redirect_uri, flow), flow

    async def _token_request(self, form: dict[str, str]) -> dict[str, Any] | None:
        """The token endpoint's answer; None when it refuses the grant (RFC 6749 §5.2)."""
        provider = await self.provider()
        secret = self.settings.oidc_client_secret.get_secret_value()
        headers = {"Accept": "application/json"}
        if secret:
            # client_secret_basic: each part form-encoded before base64 (RFC 6749 §2.3.1).
            pair = f"{quote(self.settings.oidc_client_id, safe='')}:{quote(secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
        else:
            form = {**form, "client_id": self.settings.oidc_client_id}  # a public client
        try:
            response = await self.http.post(provider.token_endpoint, data=form, headers=headers)
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"POST {provider.token_endpoint}: {exc}") from None
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.status_code == 200 and isinstance(answer, dict):
            return answer
        if response.status_code in (400, 401) and isinstance(answer, dict) and "error" in answer:
            log.warning("token request refused", error=answer.get("error"), status=response.status_code)
            return None
        raise ProviderUnavailable(f"POST {provider.token_endpoint}: HTTP {response.status_code}")

    async def finish(
        self, flow: SignInFlow | None, params: Mapping[str, str], redirect_uri: str
    ) -> tuple[Person, Tokens]:
        """The person and their tokens, from the browser's return to the callback."""
        code = checked_callback(flow, params, self.issuer)
        assert flow is not None  # checked_callback refuses a callback without one
        answer = await self._token_request(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": flow.code_verifier,
            }
        )
        if answer is None:
            raise SignInRefused("the provider did not exchange the code (used already, or expired)")
        tokens = tokens_of(answer, time.time())
        id_token = answer.get("id_token")
        if not isinstance(id_token, str):
            raise SignInRefused("the token response has no ID token (is `openid` in CONSOLE_OIDC_SCOPE?)")
        claims = await self._verified(id_token, nonce=flow.nonce, access_token=tokens.access_token)
        return person_of(claims), tokens

    async def renewed(self, tokens: Tokens, person: Person) -> tuple[Tokens, Person] | None:
        """Fresh tokens (and what a new ID token says of the person), or None when the provider
        will not renew them any more (the session at the provider ended): sign in again."""
        if tokens.refresh_token is None:
            return None
        answer = await self._token_request(
            {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token}
        )
        if answer is None:
            return None
        try:
            fresh = tokens_of(answer, time.time(), previous=tokens)
            id_token = answer.get("id_token")
            if not isinstance(id_token, str):
                return fresh, person
            claims = await self._verified(id_token, nonce=None, access_token=fresh.access_token)
            renewed = person_of(claims)
        except SignInRefused as exc:
            log.warning("renewed tokens refused", reason=str(exc))
            return None
        if renewed.subject != person.subject:
            # §12.2: a refreshed ID token is about the same person, or it is not taken.
            log.warning("renewed ID token names another subject")
            return None
        return fresh, renewed

    async def sign_out_url(self, post_logout_redirect_uri: str) -> str | None:
        """The provider's end-session address (RP-Initiated Logout), if it has one."""
        provider = await self.provider()
        if provider.end_session_endpoint is None:
            return None
        query = urlencode(
            {"client_id": self.settings.oidc_client_id, "post_logout_redirect_uri": post_logout_redirect_uri}
        )
        separator = "&" if "?" in provider.end_session_endpoint else "?"
        return f"{provider.end_session_endpoint}{separator}{query}"


def _kid(token: str) -> str | None:
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        return None
    return kid if isinstance(kid, str) else None


def needs_renewal(tokens: Tokens, now: float | None = None) -> bool:
    return tokens.expires_at - RENEW_MARGIN_SECONDS <= (time.time() if now is None else now)
