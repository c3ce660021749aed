"""The console's configuration, read from the environment under `CONSOLE_`."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# A checkout's development signing key (deploy/dev-keys/): no installed copy carries it.
DEV_KEY = Path(__file__).resolve().parents[2] / "deploy" / "dev-keys" / "dev-signing-key.pem"
MIN_SECRET_LENGTH = 32


class ConsoleSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONSOLE_", extra="ignore")

    environment: Literal["development", "production"] = "development"
    host: str = "127.0.0.1"
    port: int = Field(default=8005, ge=0, le=65535)
    # The two services, as any other system reaches them.
    registry_url: str = "http://127.0.0.1:8000"
    projections_url: str = "http://127.0.0.1:8001"
    # Signs the session cookies. Empty in development: a random one per process (sessions then
    # end with the process); production refuses to start without one of at least 32 characters.
    session_secret: SecretStr = SecretStr("")
    session_max_age_seconds: int = Field(default=8 * 3600, ge=60)
    # The development sign-in mints each request's token with this key (refused in production).
    dev_signing_key: Path = DEV_KEY
    dev_token_ttl_seconds: int = Field(default=300, ge=10, le=3600)
    audience: str = "coordination-registry"
    issuer: str = "coordreg-dev"
    request_timeout_seconds: float = 10.0
    # How many agreements a search page, and how many events a body's history page, shows.
    page_size: int = Field(default=20, ge=1, le=100)

    @model_validator(mode="after")
    def _a_secret(self) -> Self:
        secret = self.session_secret.get_secret_value()
        if not secret:
            if self.environment == "production":
                raise ValueError("CONSOLE_SESSION_SECRET is required in production")
            self.session_secret = SecretStr(secrets.token_urlsafe(48))
        elif len(secret) < MIN_SECRET_LENGTH:
            raise ValueError(f"CONSOLE_SESSION_SECRET must have at least {MIN_SECRET_LENGTH} characters")
        return self

    @property
    def secure_cookies(self) -> bool:
        return self.environment == "production"

    @property
    def development_sign_in(self) -> bool:
        return self.environment == "development"
