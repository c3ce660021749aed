"""Settings every HTTP service shares: who may call, and the limits (docs/SECURITY.md).

Each service's own settings class inherits these fields and reads them under its own
prefix (REGISTRY_AUTH_JWKS, PROJECTIONS_AUTH_JWKS, ...).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings

from services.common.auth import DEFAULT_AUDIENCE, DEFAULT_ISSUER


class ClientAccessSettings(BaseSettings):
    # Who may call (docs/SECURITY.md). development: with no JWKS configured, the development
    # key of deploy/dev-keys/ is trusted. production: the service refuses to start without
    # keys, or when the keys include that development key.
    environment: Literal["development", "production"] = "development"
    # The trusted public keys: a JWKS document inline (starts with "{") or the path of one
    # (re-read when it changes, at most every auth_jwks_reload_seconds).
    auth_jwks: str = ""
    auth_jwks_reload_seconds: float = 30.0
    auth_audience: str = DEFAULT_AUDIENCE
    auth_issuer: str = DEFAULT_ISSUER
    # Space-separated; asymmetric algorithms only (HS*, none are refused at start-up).
    auth_algorithms: str = "ES256 RS256 PS256 EdDSA"
    auth_leeway_seconds: float = Field(30.0, ge=0, le=300)
    # Limits (OWASP API4). The rate limit is a token bucket per client id, per instance;
    # rate_limit_per_second <= 0 turns it off.
    max_body_bytes: int = Field(256 * 1024, ge=1024)
    rate_limit_per_second: float = 1000.0
    rate_limit_burst: int = Field(2000, ge=1)
