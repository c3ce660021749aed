"""The registry's configuration: one settings object, read from the environment."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.auth import DEFAULT_AUDIENCE, DEFAULT_ISSUER


class RegistrySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="REGISTRY_", extra="ignore")

    database_url: str = Field(
        "postgresql://postgres@127.0.0.1:5432/postgres",
        validation_alias=AliasChoices("REGISTRY_DATABASE_URL", "DATABASE_URL"),
    )
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092",
        validation_alias=AliasChoices("REGISTRY_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"),
    )
    topic: str = "agreements.events.v1"
    host: str = "127.0.0.1"
    port: int = 8000
    pool_min_size: int = 2
    pool_max_size: int = 20
    # Transparent retries of a command that lost an optimistic-concurrency race and does not
    # depend on the version the caller saw (no If-Match).
    concurrency_retries: int = 5
    relay_batch_size: int = 500
    relay_poll_seconds: float = 0.5
    log_level: str = "INFO"
    json_logs: bool = True

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
