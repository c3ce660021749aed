"""A bearer token → the `Client` it speaks for, or `Unauthenticated` saying why not.

The header is checked before the signature (`alg` must be accepted and be the one its `kid`'s
key signs with), then the signature and the claims. A verified token is remembered with the
key that verified it, for as long as that key stays trusted and the token's time window holds.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

import jwt
from prometheus_client import Counter

from services.common.auth import AuthConfigError, Client, Unauthenticated
from services.common.auth.jwks import TrustedKey
from services.common.auth.key_source import KeySource

_CLIENT_ID = re.compile(r"^[\x21-\x7e]{1,200}$")  # printable ASCII, no spaces
_PARTY_ID = re.compile(r"^[a-z0-9._-]{1,64}$")
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
                leeway=self.leeway,
                options={"require": ["exp", "sub", "aud", "iss"]},
            )
            outcome = "accepted"
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
        finally:
            SIGNATURE_CHECKS.labels(outcome).inc()
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
