"""Who is calling: bearer JWTs verified against configured public keys (CONTRACT.md, "Clients").

Both services share this module. A token is accepted only when

- its header names a `kid` found in the configured JWKS and an `alg` that is one of the
  configured *asymmetric* algorithms and the one that key is for (so `alg: none` and
  HS256 signed with a public key are refused before any signature is looked at);
- its signature verifies with that key, and `exp` (required), `nbf` (when present),
  `aud` and `iss` check out (with a small leeway for clock skew);
- `sub` is a short printable client id, `scope` a space-separated string and
  `party_ids` a list of party ids.

Routes then depend on `require(scope)`, which yields a `Client(client_id, scopes,
party_ids)` or refuses: no or bad token → 401 with `WWW-Authenticate: Bearer`, a missing
scope → 403. Which parties a client may act for is checked where the agreement is known
(the registry's routes). Every authenticated request is also charged to the client's
rate-limit bucket (`services.common.limits`).

Keys rotate by listing several in the JWKS (each token picks its key by `kid`). A JWKS
given as a file is re-read when the file changes (checked at most every
`auth_jwks_reload_seconds`), so keys can be added and retired without a restart.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Protocol

import jwt
import structlog
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict

from services.common.limits import RateLimiter
from services.common.problems import PROBLEM_JSON, problem

log = structlog.get_logger(__name__)

SIGN = "agreements:sign"
AMEND = "agreements:amend"
REPORT = "progress:report"
CLOSE = "agreements:close"
READ = "agreements:read"
ALL_SCOPES = (SIGN, AMEND, REPORT, CLOSE, READ)

DEVELOPMENT = "development"
PRODUCTION = "production"
DEFAULT_AUDIENCE = "coordination-registry"
DEFAULT_ISSUER = "coordreg-dev"

# The development key pair's public half (deploy/dev-keys/): trusted by default in
# development mode, refused in production mode whatever kid it is given.
DEV_JWK: dict[str, str] = {
    "kty": "EC",
    "crv": "P-256",
    "x": "RNYdiM9wjYuqBOo94BVVNApCaA1-ml0gjK-JNBW33D8",
    "y": "8NLPQJFlUHQ4_mnMqJGu3QDPwgFwVlPc3GNkwH1pdnk",
    "kid": "coordreg-dev-1",
    "use": "sig",
    "alg": "ES256",
}

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
_CLIENT_ID = re.compile(r"^[\x21-\x7e]{1,200}$")  # printable ASCII, no spaces
_PARTY_ID = re.compile(r"^[a-z0-9._-]{1,64}$")
MAX_TOKEN_CHARS = 8192
MAX_PARTY_IDS = 1000
MIN_RSA_BITS = 2048


class AuthConfigError(Exception):
    """The key configuration is unusable or unsafe: the service refuses to start."""


class Unauthenticated(Exception):
    """No token, or a token that is not valid (HTTP 401)."""

    def __init__(self, detail: str, *, error: str | None = "invalid_token") -> None:
        super().__init__(detail)
        self.detail = detail
        self.error = error


class Forbidden(Exception):
    """A valid client asking for what it may not do (HTTP 403)."""

    def __init__(self, detail: str, *, scope: str | None = None, kind: str = "forbidden") -> None:
        super().__init__(detail)
        self.detail = detail
        self.scope = scope
        self.kind = kind


@dataclass(frozen=True)
class Client:
    """An authenticated caller: the token's `sub`, `scope` and `party_ids`."""

    client_id: str
    scopes: frozenset[str]
    party_ids: frozenset[str]

    def holds(self, party_id: str) -> bool:
        return party_id in self.party_ids

    def holds_any(self, party_ids: Iterable[str]) -> bool:
        return not self.party_ids.isdisjoint(party_ids)


class AuthSettings(Protocol):
    """The settings fields both services carry (REGISTRY_* / PROJECTIONS_*)."""

    @property
    def environment(self) -> str: ...
    @property
    def auth_jwks(self) -> str: ...
    @property
    def auth_audience(self) -> str: ...
    @property
    def auth_issuer(self) -> str: ...
    @property
    def auth_algorithms(self) -> str: ...
    @property
    def auth_leeway_seconds(self) -> float: ...
    @property
    def auth_jwks_reload_seconds(self) -> float: ...


# ---------------------------------------------------------------- keys


def thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url): the key itself, whatever its kid."""
    members = _THUMBPRINT_MEMBERS.get(str(jwk.get("kty")))
    if members is None:
        raise AuthConfigError(f"unsupported key type {jwk.get('kty')!r}")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


DEV_THUMBPRINT = thumbprint(DEV_JWK)


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
    names = frozenset(re.split(r"[\s,]+", value.strip())) - {""}
    refused = names - ASYMMETRIC
    if refused:
        raise AuthConfigError(
            f"refused token algorithms {sorted(refused)}: only asymmetric ones are accepted "
            f"({', '.join(sorted(ASYMMETRIC))})"
        )
    if not names:
        raise AuthConfigError("no token algorithm is accepted")
    return names


class KeySource:
    """The trusted keys, from inline JSON or a file that is re-read when it changes."""

    def __init__(
        self,
        setting: str,
        *,
        algorithms: frozenset[str],
        production: bool,
        reload_seconds: float = 30.0,
    ) -> None:
        self.algorithms = algorithms
        self.production = production
        self.reload_seconds = reload_seconds
        self._lock = threading.Lock()
        self._checked = time.monotonic()
        text = setting.strip()
        self.path: Path | None = None
        if not text:
            if production:
                raise AuthConfigError(
                    "production mode needs the trusted public keys: set *_AUTH_JWKS to a JWKS "
                    "document or the path of one"
                )
            self._keys = self._checked_keys({"keys": [DEV_JWK]}, allow_dev=True)
            self._mtime: float | None = None
            return
        if text.startswith("{"):
            self._keys = self._checked_keys(self._json(text, "inline JWKS"))
            self._mtime = None
            return
        self.path = Path(text)
        self._mtime = self._stat()
        self._keys = self._checked_keys(self._read())

    @staticmethod
    def _json(text: str, where: str) -> Any:
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise AuthConfigError(f"{where} is not JSON: {exc}") from exc

    def _stat(self) -> float:
        assert self.path is not None
        try:
            return os.stat(self.path).st_mtime
        except OSError as exc:
            raise AuthConfigError(f"cannot read the JWKS file {self.path}: {exc}") from exc

    def _read(self) -> Any:
        assert self.path is not None
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise AuthConfigError(f"cannot read the JWKS file {self.path}: {exc}") from exc
        return self._json(text, f"JWKS file {self.path}")

    def _checked_keys(self, document: Any, *, allow_dev: bool = False) -> dict[str, TrustedKey]:
        keys = parse_jwks(document, self.algorithms)
        if not keys:
            raise AuthConfigError("the JWKS has no keys: no token could ever be accepted")
        if self.production and not allow_dev:
            dev = [k.kid for k in keys.values() if k.thumbprint == DEV_THUMBPRINT or k.kid == DEV_JWK["kid"]]
            if dev:
                raise AuthConfigError(
                    f"production mode refuses the development key (kid {dev[0]!r}): its private half "
                    "is published in deploy/dev-keys/"
                )
        return keys

    def keys(self) -> dict[str, TrustedKey]:
        if self.path is None or time.monotonic() - self._checked < self.reload_seconds:
            return self._keys
        with self._lock:
            self._checked = time.monotonic()
            try:
                mtime = self._stat()
                if mtime != self._mtime:
                    self._mtime = mtime  # a broken file is reported once, then again when it changes
                    self._keys = self._checked_keys(self._read())
                    log.info("trusted keys reloaded", kids=sorted(self._keys), path=str(self.path))
            except AuthConfigError as exc:
                # Keep serving with the keys that were good; say loudly that the new ones are not.
                log.error("trusted keys not reloaded", error=str(exc), path=str(self.path))
        return self._keys


# ---------------------------------------------------------------- tokens


VERIFIED_TOKENS = 10_000


class TokenVerifier:
    def __init__(
        self,
        keys: KeySource,
        *,
        audience: str,
        issuer: str,
        algorithms: frozenset[str],
        leeway: float = 30.0,
    ) -> None:
        if not audience or not issuer:
            raise AuthConfigError("the token audience and issuer must be configured")
        self.source = keys
        self.audience = audience
        self.issuer = issuer
        self.algorithms = algorithms
        self.leeway = leeway
        # Tokens already verified, with the key that verified them: a client sends the same
        # token on every call, and checking a signature costs more than the rest of a read.
        self._verified: OrderedDict[str, tuple[Client, str, TrustedKey, float, float]] = OrderedDict()

    def verify(self, token: str) -> Client:
        if len(token) > MAX_TOKEN_CHARS:
            raise Unauthenticated("the token is too long")
        remembered = self._verified.get(token)
        if remembered is not None:
            client, kid, trusted, not_before, expires = remembered
            now = time.time()
            # Still valid only while the same key is trusted (rotation and removal take
            # effect at once) and the token's own time window holds.
            if (
                self.source.keys().get(kid) is trusted
                and not_before - self.leeway <= now <= expires + self.leeway
            ):
                return client
            del self._verified[token]
        client, kid, trusted, not_before, expires = self._verify(token)
        self._verified[token] = (client, kid, trusted, not_before, expires)
        while len(self._verified) > VERIFIED_TOKENS:
            self._verified.popitem(last=False)
        return client

    def _verify(self, token: str) -> tuple[Client, str, TrustedKey, float, float]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("the token is not a JWT") from None
        algorithm = header.get("alg")
        if algorithm not in self.algorithms:
            raise Unauthenticated(f"tokens signed with {algorithm!r} are not accepted")
        kid = header.get("kid")
        trusted = self.source.keys().get(kid) if isinstance(kid, str) else None
        if trusted is None:
            raise Unauthenticated("the token's signing key (kid) is not trusted")
        if algorithm != trusted.algorithm:
            raise Unauthenticated(f"key {kid!r} signs with {trusted.algorithm}, not {algorithm}")
        try:
            claims = jwt.decode(
                token,
                trusted.key.key,
                algorithms=[trusted.algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "sub", "aud", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthenticated("the token is not valid yet (nbf)") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated("the token is not meant for this service (aud)") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated("the token comes from an issuer this service does not trust") from None
        except jwt.InvalidSignatureError:
            raise Unauthenticated("the token's signature does not verify") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(f"the token has no {exc.claim!r} claim") from None
        except jwt.PyJWTError:
            raise Unauthenticated("the token is not valid") from None
        assert isinstance(kid, str)
        not_before = float(claims.get("nbf", 0))
        return client_of(claims), kid, trusted, not_before, float(claims["exp"])


def client_of(claims: Mapping[str, Any]) -> Client:
    sub = claims.get("sub")
    if not isinstance(sub, str) or not _CLIENT_ID.match(sub):
        raise Unauthenticated("the token's sub must be a client id of 1-200 printable characters")
    scope = claims.get("scope", "")
    if not isinstance(scope, str):
        raise Unauthenticated("the token's scope must be a space-separated string")
    party_ids = claims.get("party_ids", [])
    if (
        not isinstance(party_ids, list)
        or len(party_ids) > MAX_PARTY_IDS
        or not all(isinstance(p, str) and _PARTY_ID.match(p) for p in party_ids)
    ):
        raise Unauthenticated("the token's party_ids must be a list of party ids")
    return Client(sub, frozenset(scope.split()), frozenset(party_ids))


def verifier_from_settings(settings: AuthSettings) -> TokenVerifier:
    """Builds the verifier, or raises AuthConfigError: a service must not start without one."""
    if settings.environment not in (DEVELOPMENT, PRODUCTION):
        raise AuthConfigError(f"environment must be {DEVELOPMENT!r} or {PRODUCTION!r}")
    algorithms = parse_algorithms(settings.auth_algorithms)
    source = KeySource(
        settings.auth_jwks,
        algorithms=algorithms,
        production=settings.environment == PRODUCTION,
        reload_seconds=settings.auth_jwks_reload_seconds,
    )
    return TokenVerifier(
        source,
        audience=settings.auth_audience,
        issuer=settings.auth_issuer,
        algorithms=algorithms,
        leeway=settings.auth_leeway_seconds,
    )


# ---------------------------------------------------------------- FastAPI

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    bearerFormat="JWT",
    description="A JWT from the identity provider: `sub` (client id), `scope`, `party_ids`.",
)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


async def authenticate(request: Request, credentials: Credentials) -> Client:
    """The verified caller, charged to its rate-limit bucket."""
    if credentials is None:
        raise Unauthenticated("this endpoint needs a bearer token (Authorization: Bearer <JWT>)", error=None)
    verifier: TokenVerifier = request.app.state.verifier
    client = verifier.verify(credentials.credentials)
    limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    if limiter is not None:
        limiter.charge(client.client_id)
    request.state.client_id = client.client_id
    structlog.contextvars.bind_contextvars(client_id=client.client_id)
    return client


def require(scope: str) -> Callable[[Client], Awaitable[Client]]:
    """A dependency: the authenticated client, which must hold `scope` (else 403)."""

    async def scoped(client: Annotated[Client, Depends(authenticate)]) -> Client:
        if scope not in client.scopes:
            raise Forbidden(
                f"this client's token lacks the scope {scope!r}", scope=scope, kind="insufficient-scope"
            )
        return client

    scoped.__name__ = f"require_{scope.replace(':', '_')}"
    return scoped


class Problem(BaseModel):
    """RFC 9457 problem details, as every error of both services is written (documentation only)."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = None


_ERROR_TEXT = {
    400: "Bad request (a malformed header or cursor)",
    401: "No token, or a token that is not valid",
    403: "The token lacks the scope, or the client does not act for the party",
    404: "Not found",
    409: "Conflict with the agreement's state or another request",
    412: "If-Match names an older version",
    413: "Request body too large",
    422: "Validation failed; `errors` has the field paths",
    429: "Too many requests from this client; see Retry-After",
    503: "Not yet consistent (min_position); see Retry-After",
}


def documented_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for a route's problem+json errors (FastAPI's default 422 shape is replaced)."""
    return {
        status: {
            "description": _ERROR_TEXT.get(status, "Error"),
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }


def install(app: FastAPI, verifier: TokenVerifier, limiter: RateLimiter | None) -> None:
    """Puts the verifier and the rate limiter on the app and writes auth errors as problem+json."""
    app.state.verifier = verifier
    app.state.rate_limiter = limiter

    @app.exception_handler(Unauthenticated)
    async def _unauthenticated(request: Request, exc: Unauthenticated) -> JSONResponse:
        challenge = 'Bearer realm="coordreg"'
        if exc.error:
            challenge += f', error="{exc.error}", error_description="{_quoted(exc.detail)}"'
        return problem(401, exc.detail, kind="unauthenticated", headers={"WWW-Authenticate": challenge})

    @app.exception_handler(Forbidden)
    async def _forbidden(request: Request, exc: Forbidden) -> JSONResponse:
        headers = None
        if exc.scope:
            headers = {
                "WWW-Authenticate": f'Bearer realm="coordreg", error="insufficient_scope", scope="{exc.scope}"'
            }
        return problem(403, exc.detail, kind=exc.kind, headers=headers)

    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = original()
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            schemas["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _quoted(text: str) -> str:
    return text.replace("\\", "").replace('"', "'")
