"""The console's configuration, read from the environment under `CONSOLE_`.

Two ways to sign in: through the province's OpenID Connect provider when `oidc_issuer` is set
(docs/adr/0019-console-openid-connect.md), which production requires; otherwise, in development
only, the development sign-in as a demo official."""

from __future__ import annotations

import secrets
from functools import cached_property
from pathlib import Path
from typing import Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.transparency import note
from services.transparency.log import DEV_LOG_VERIFIER_KEY, DEV_PUBLIC_KEY, LogKeyError, read_policy
from services.transparency.policy import Policy

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
    # How many agreements a search page, and how many events a body's history page, shows.
    page_size: int = Field(default=20, ge=1, le=100)
    # The proof of record page (/thoa-thuan/{id}/chung-minh) checks every checkpoint with this
    # verifier key of the transparency log (Go note format `<name>+<key ID>+<key>`), pinned here
    # and never taken from the registry (GET /v1/log/keys). Empty: the development log's key
    # in development; production refuses to start without one, or with that one.
    log_key: str = ""
    # The witnesses' verifier keys (same format, space-separated) whose cosignatures the page
    # checks; a cosignature by any other key is shown as present but not checked.
    log_witness_keys: str = ""
    # The witnessing policy (C2SP tlog-policy: a path, or the file's text), the one the
    # registry's operators publish: the page checks the cosignatures of its witnesses too, and
    # says whether they make its quorum. Empty: no quorum shown.
    log_policy: str = ""
    # How often the registry signs a checkpoint (its REGISTRY_LOG_CHECKPOINT_SECONDS): how
    # soon, the page says, an event newer than the latest checkpoint will be in one.
    log_checkpoint_seconds: float = Field(default=10.0, gt=0)
    # The registry's address in the `coordreg-audit prove` command the page shows, as an auditor
    # outside reaches it. Empty: registry_url.
    public_registry_url: str = ""

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
    def _log_keys(self) -> Self:
        if not self.log_key.strip():
            if self.environment == "production":
                raise ValueError(
                    "CONSOLE_LOG_KEY (the transparency log's verifier key) is required in production"
                )
            self.log_key = DEV_LOG_VERIFIER_KEY
        try:
            pinned = note.parse_verifier_key(self.log_key)
        except note.NoteError as exc:
            raise ValueError(f"CONSOLE_LOG_KEY is not a verifier key <name>+<key ID>+<key>: {exc}") from None
        if self.environment == "production" and pinned.public_key_bytes == DEV_PUBLIC_KEY:
            raise ValueError("production refuses the development log key in CONSOLE_LOG_KEY (it is public)")
        try:
            read_policy(self.log_policy, "CONSOLE_LOG_POLICY")
        except LogKeyError as exc:
            raise ValueError(str(exc)) from None
        for key in self.log_witness_keys.split():
            try:
                note.parse_witness_key(key)
            except note.NoteError as exc:
                raise ValueError(
                    f"CONSOLE_LOG_WITNESS_KEYS: {key[:60]!r} is not a verifier key: {exc}"
                ) from None
        return self

    @property
    def log_verifier(self) -> note.Verifier:
        return note.parse_verifier_key(self.log_key)

    @cached_property
    def policy(self) -> Policy | None:
        return read_policy(self.log_policy, "CONSOLE_LOG_POLICY")

    @property
    def witness_verifiers(self) -> list[note.Verifier]:
        listed = [note.parse_witness_key(key) for key in self.log_witness_keys.split()]
        policy = self.policy
        return list(dict.fromkeys([*listed, *(w.verifier for w in policy.witnesses)] if policy else listed))

    @property
    def audit_registry_url(self) -> str:
        return (self.public_registry_url or self.registry_url).rstrip("/")

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
