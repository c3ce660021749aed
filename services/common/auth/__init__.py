"""Who is calling: bearer JWTs verified against configured public keys (docs/CONTRACT.md, "Clients").

Both services share this package. A token is accepted only when

- its header names a `kid` found in the configured JWKS and an `alg` that is one of the
  configured *asymmetric* algorithms and the one that key is for (so `alg: none` and
  HS256 signed with a public key are refused before any signature is looked at);
- its signature verifies with that key, and `exp` (required), `nbf` and `iat` (when
  present), `aud` and `iss` check out (with a small leeway for clock skew);
- it lives no longer than `auth_max_token_lifetime_seconds` (`exp - iat`, or `exp - now`
  without `iat`; default an hour);
- `sub` is a short printable client id, `scope` a space-separated string and
  `party_ids` a list of party ids.

Routes then depend on `require(scope)`, which yields a `Client(client_id, scopes,
party_ids)` or refuses: no or bad token → 401 with `WWW-Authenticate: Bearer`, a missing
scope → 403. Which parties a client may act for is checked where the agreement is known
(the registry). Every authenticated request is also charged to the client's rate-limit
bucket (`services.common.limits`).

Keys rotate by listing several in the JWKS (each token picks its key by `kid`). A JWKS
given as a file is re-read when the file changes (checked at most every
`auth_jwks_reload_seconds`), so keys can be added and retired without a restart.

This module holds what callers name: the scopes, `Client`, the refusals and the development
key. The work is in its modules, one job each:

- `jwks`: a JWKS document → the trusted verification keys (refusing unsafe ones);
- `key_source`: where the keys come from (inline, a file re-read on change, the dev key);
- `verifier`: a token → a `Client`, with the cache of tokens already verified;
- `dependencies`: the FastAPI side (`require(scope)`, the 401/403 problems, `install`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from services.common.auth.verifier import TokenVerifier

SIGN = "agreements:sign"
AMEND = "agreements:amend"
REPORT = "progress:report"
CLOSE = "agreements:close"
READ = "agreements:read"
# The party directory's administrators (decision 15): register, rename, record successions.
ADMINISTER = "parties:administer"
# A partner agency witnessing the transparency log: signs checkpoints on demand and hands in
# cosignatures (docs/CONTRACT.md B11).
WITNESS = "log:witness"
ALL_SCOPES = (SIGN, AMEND, REPORT, CLOSE, READ, ADMINISTER, WITNESS)

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
    @property
    def auth_max_token_lifetime_seconds(self) -> float: ...


def verifier_from_settings(settings: AuthSettings) -> TokenVerifier:
    """Builds the verifier, or raises AuthConfigError: a service must not start without one."""
    # Imported here, not at the top: those modules use the names defined above.
    from services.common.auth.jwks import parse_algorithms
    from services.common.auth.key_source import KeySource
    from services.common.auth.verifier import TokenVerifier

    if settings.environment not in (DEVELOPMENT, PRODUCTION):
        raise AuthConfigError(f"environment must be {DEVELOPMENT!r} or {PRODUCTION!r}")
    if settings.environment == PRODUCTION and settings.auth_issuer == DEFAULT_ISSUER:
        # Anyone can mint tokens in the development issuer's name (its key is published).
        raise AuthConfigError(
            f"production mode refuses the development issuer {DEFAULT_ISSUER!r}: set *_AUTH_ISSUER "
            "to the identity provider's"
        )
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
        max_lifetime=settings.auth_max_token_lifetime_seconds,
    )
