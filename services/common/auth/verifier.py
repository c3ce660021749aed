"""A bearer token → the `Client` it speaks for, or `Unauthenticated` saying why not.

The header is checked before the signature (`alg` must be accepted and be the one its `kid`'s
key signs with), then the signature and the claims. A verified token is remembered with the
key that verified it, for as long as that key stays trusted and the token's time window holds.

The time claims are checked here rather than by PyJWT: each must be a number of seconds that
every reader of it can hold (a float, a datetime, PostgreSQL's timestamptz), and the token
may not live longer than the configured maximum (`exp - iat`, or `exp - now` without `iat`).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import jwt
from prometheus_client import Counter

from services.common.auth import AuthConfigError, Client, Unauthenticated
from services.common.auth.jwks import TrustedKey
from services.common.auth.key_source import KeySource
from services.common.patterns import CLIENT_ID, SLUG, full_match

# The last second of year 9999: a NumericDate beyond it is no date any reader can hold.
MAX_NUMERIC_DATE = 253_402_300_799
DEFAULT_MAX_LIFETIME = 3600.0
MAX_TOKEN_CHARS = 8192
MAX_PARTY_IDS = 1000
VERIFIED_TOKENS = 10_000
# Every signature checked, which the failed-authentication limit bounds per address
# (services/common/auth/failures.py): `refused` is a signature or claim that did not hold.
SIGNATURE_CHECKS = Counter(
    "auth_signature_checks_total", "Token signatures checked (with the claims), by outcome", ["outcome"]
)


class TokenVerifier:
    def __init__(
        self,
        keys: KeySource,
        *,
        audience: str,
        issuer: str,
        algorithms: frozenset[str],
        leeway: float = 30.0,
        max_lifetime: float = DEFAULT_MAX_LIFETIME,
    ) -> None:
        if not audience or not issuer:
            raise AuthConfigError("the token audience and issuer must be configured")
        self.source = keys
        self.audience = audience
        self.issuer = issuer
        self.algorithms = algorithms
        self.leeway = leeway
        self.max_lifetime = max_lifetime
        # Tokens already verified, with the key that verified them: a client sends the same
        # token on every call, and checking a signature costs more than the rest of a read.
        self._verified: OrderedDict[str, tuple[Client, str, TrustedKey, float, float]] = OrderedDict()

    def verify(self, token: str) -> Client:
        if len(token) > MAX_TOKEN_CHARS:
            raise Unauthenticated("the token is too long")
        remembered = self.remembered(token)
        if remembered is not None:
            return remembered
        client, kid, trusted, not_before, expires = self._verify(token)
        self._verified[token] = (client, kid, trusted, not_before, expires)
        while len(self._verified) > VERIFIED_TOKENS:
            self._verified.popitem(last=False)
        return client

    def remembered(self, token: str) -> Client | None:
        """The client of a token already verified and still valid, without checking a signature."""
        remembered = self._verified.get(token)
        if remembered is None:
            return None
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
        return None

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
        outcome = "refused"
        try:
            claims = jwt.decode(
                token,
                trusted.key.key,
                algorithms=[trusted.algorithm],
                audience=self.audience,
                issuer=self.issuer,
                options={
                    "require": ["exp", "sub", "aud", "iss"],
                    # Checked by `_time_window`, which bounds the numbers first.
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
            outcome = "accepted"
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
        finally:
            SIGNATURE_CHECKS.labels(outcome).inc()
        assert isinstance(kid, str)
        not_before, expires = self._time_window(claims, time.time())
        return client_of(claims), kid, trusted, not_before, expires

    def _time_window(self, claims: Mapping[str, Any], now: float) -> tuple[float, float]:
        """(nbf or 0, exp) of a token valid now and not longer-lived than the maximum, else refused."""
        expires = _numeric_date(claims, "exp")
        not_before = _numeric_date(claims, "nbf")
        issued = _numeric_date(claims, "iat")
        assert expires is not None  # required above
        if now > expires + self.leeway:
            raise Unauthenticated("the token has expired")
        if not_before is not None and now < not_before - self.leeway:
            raise Unauthenticated("the token is not valid yet (nbf)")
        if issued is not None and issued > now + self.leeway:
            raise Unauthenticated("the token was issued in the future (iat)")
        # A token minted without iat is measured from now: it may not outlive the maximum either.
        lifetime = expires - issued if issued is not None else expires - now - self.leeway
        if lifetime > self.max_lifetime:
            raise Unauthenticated(
                f"the token lives longer than the {self.max_lifetime:g} seconds this service accepts"
            )
        return not_before or 0.0, expires


def _numeric_date(claims: Mapping[str, Any], name: str) -> float | None:
    if name not in claims:
        return None
    value = claims[name]
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (0 <= value <= MAX_NUMERIC_DATE)  # compared as numbers: no float() of 10**400
        or not math.isfinite(value)
    ):
        raise Unauthenticated(f"the token's {name} must be seconds since 1970, before the year 10000")
    return float(value)


def client_of(claims: Mapping[str, Any]) -> Client:
    sub = claims.get("sub")
    if not isinstance(sub, str) or not full_match(CLIENT_ID, sub):
        raise Unauthenticated("the token's sub must be a client id of 1-200 printable characters")
    scope = claims.get("scope", "")
    if not isinstance(scope, str):
        raise Unauthenticated("the token's scope must be a space-separated string")
    party_ids = claims.get("party_ids", [])
    if (
        not isinstance(party_ids, list)
        or len(party_ids) > MAX_PARTY_IDS
        or not all(isinstance(p, str) and full_match(SLUG, p) for p in party_ids)
    ):
        raise Unauthenticated("the token's party_ids must be a list of party ids")
    return Client(sub, frozenset(scope.split()), frozenset(party_ids))
