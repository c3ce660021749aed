"""The registry's configuration: one settings object, read from the environment."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import ClientAccessSettings


class RegistrySettings(ClientAccessSettings):
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
