"""The console's configuration, read from the environment under `CONSOLE_`.

Two ways to sign in: through the province's OpenID Connect provider when `oidc_issuer` is set
(docs/adr/0018-console-openid-connect.md), which production requires; otherwise, in development
only, the development sign-in as a demo official."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Literal, Self
from urllib.parse import urlsplit

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
    dev_token_audience: str = "coordination-registry"
    dev_token_issuer: str = "coordreg-dev"
    # OpenID Connect: the identity provider's issuer (its discovery document is at
    # <issuer>/.well-known/openid-configuration) and the console's registration there. An empty
    # client secret makes the console a public client, protected by PKCE alone.
    oidc_issuer: str = ""
    oidc_client_id: str = "coordreg-console"
    oidc_client_secret: SecretStr = SecretStr("")
    oidc_scope: str = "openid progress:report agreements:read"
    # The console's address as browsers reach it, e.g. https://canbo.example.gov.vn: the redirect
    # URI registered at the provider is this followed by /dang-nhap/xac-nhan. Empty (development
    # only): each request's own address.
    public_url: str = ""
    request_timeout_seconds: float = 10.0

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

    @model_validator(mode="after")
    def _a_way_to_sign_in(self) -> Self:
        if self.environment != "production":
            return self
        # Production has no development sign-in: without a provider, nobody could sign in.
        if not self.oidc_issuer:
            raise ValueError(
                "CONSOLE_OIDC_ISSUER is required in production (the province's identity provider)"
            )
        for name, url in (("CONSOLE_OIDC_ISSUER", self.oidc_issuer), ("CONSOLE_PUBLIC_URL", self.public_url)):
            if urlsplit(url).scheme != "https":
                # Codes and tokens travel in these requests; the session cookie is Secure.
                raise ValueError(f"{name} must be an https:// address in production")
        return self

    @property
    def secure_cookies(self) -> bool:
        return self.environment == "production"

    @property
    def development_sign_in(self) -> bool:
        """The demo officials' sign-in: development only, and only without a provider."""
        return self.environment == "development" and not self.oidc_issuer

    @property
    def openid_connect(self) -> bool:
        return bool(self.oidc_issuer)
