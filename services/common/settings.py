"""The settings every service shares, in one base class each:

- `ServiceSettings`: where the database and the broker are, and the events topic (every
  service and the audit tool);
- `ClientAccessSettings`: who may call, and the limits (docs/SECURITY.md; the HTTP services).
Each service's own settings class inherits them and reads them under its own prefix
(REGISTRY_DATABASE_URL, PROJECTIONS_AUTH_JWKS, AUDIT_TOPIC, ...). `DATABASE_URL` and
`KAFKA_BOOTSTRAP_SERVERS` without a prefix also apply to every service at once; the prefixed
variable wins.
"""

from __future__ import annotations

from typing import Any, Literal, Self

from coordreg_contracts.topic import TOPIC
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource

from services.common.auth import DEFAULT_AUDIENCE, DEFAULT_ISSUER
from services.common.auth.failures import parse_networks
from services.common.kafka_security import KafkaConnection, KafkaSecurity, SaslMechanism, SecurityProtocol

# The fields that may also be given once for every service, without a prefix.
# The principal (username, password) is each service's own: never shared.
SHARED_UNPREFIXED = frozenset(
    {
        "database_url",
        "kafka_bootstrap_servers",
        "kafka_security_protocol",
        "kafka_sasl_mechanism",
        "kafka_ca_file",
    }
)


class _UnprefixedEnv(EnvSettingsSource):
    """DATABASE_URL, KAFKA_BOOTSTRAP_SERVERS and the broker's protocol and CA as they are, for
    every service (and nothing else: an unprefixed HOST or PORT in the environment is not the
    service's)."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls, env_prefix="")

    def __call__(self) -> dict[str, Any]:
        return {name: value for name, value in super().__call__().items() if name in SHARED_UNPREFIXED}


class ServiceSettings(BaseSettings):
    database_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    # Who this service is on the broker (services/common/kafka_security.py, docs/SECURITY.md
    # "Kafka principals"): SCRAM over TLS unless PLAINTEXT is asked for by name.
    kafka_security_protocol: SecurityProtocol = "SASL_SSL"
    kafka_sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    kafka_username: str = ""
    kafka_password: SecretStr = SecretStr("")
    kafka_password_file: str = ""
    kafka_ca_file: str = ""
    topic: str = TOPIC
    log_level: str = "INFO"
    json_logs: bool = True
    # OpenTelemetry tracing (services/common/tracing.py, docs/OPERATIONS.md "Tracing"):
    # none (the default) configures nothing and costs nothing; otlp exports over OTLP/HTTP to
    # tracing_otlp_endpoint (a base URL, /v1/traces is appended, like OTEL_EXPORTER_OTLP_ENDPOINT);
    # console writes one JSON line per span to stdout; file appends them to tracing_file.
    tracing_exporter: Literal["none", "otlp", "console", "file"] = "none"
    tracing_otlp_endpoint: str = "http://127.0.0.1:4318"
    tracing_file: str = ""
    # The resource's service.name; empty: the process's command (coordreg-registry, coordreg-relay, ...).
    tracing_service_name: str = ""
    # Share of new traces recorded; a trace begun upstream follows its caller's sampling decision.
    tracing_sample_ratio: float = Field(1.0, ge=0, le=1)

    def kafka_connection(self) -> KafkaConnection:
        security = KafkaSecurity(
            protocol=self.kafka_security_protocol,
            mechanism=self.kafka_sasl_mechanism,
            username=self.kafka_username,
            password=self.kafka_password,
            password_file=self.kafka_password_file,
            ca_file=self.kafka_ca_file,
        )
        return KafkaConnection(bootstrap_servers=self.kafka_bootstrap_servers, security=security)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            _UnprefixedEnv(settings_cls),
            dotenv_settings,
            file_secret_settings,
        )


class ClientAccessSettings(ServiceSettings):
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
    # The longest a token may live (exp - iat, or exp - now without iat), in both modes: a
    # stolen token is worth at most this long. At most a day.
    auth_max_token_lifetime_seconds: float = Field(3600.0, ge=60, le=86400)
    # Limits (OWASP API4). The rate limit is a token bucket per client id, per instance;
    # rate_limit_per_second <= 0 turns it off.
    max_body_bytes: int = Field(256 * 1024, ge=1024)
    rate_limit_per_second: float = 1000.0
    rate_limit_burst: int = Field(2000, ge=1)
    # Failed authentications per source address (services/common/auth/failures.py): a token
    # bucket per address, each failure takes one; an empty bucket is a 429 before any signature
    # is checked. auth_failure_rate_per_second <= 0 turns it off. At most
    # auth_failure_max_addresses buckets are kept (least recently used dropped).
    auth_failure_rate_per_second: float = 10.0
    auth_failure_burst: int = Field(200, ge=1)
    auth_failure_max_addresses: int = Field(100_000, ge=1, le=10_000_000)
    # Proxies whose X-Forwarded-For is believed (addresses or CIDR blocks, space-separated);
    # empty: none, the TCP peer is the client.
    trusted_proxies: str = ""

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        parse_networks(value)  # a ValueError here refuses the setting at start-up
        return value

    @model_validator(mode="after")
    def _production_authenticates_to_kafka(self) -> Self:
        # Like the development keys: a production service never talks to an open broker.
        if self.environment == "production" and self.kafka_security_protocol == "PLAINTEXT":
            raise ValueError(
                "production refuses KAFKA_SECURITY_PROTOCOL=PLAINTEXT: the services authenticate "
                "to Kafka with SCRAM-SHA-512 over TLS (docs/SECURITY.md, Kafka principals)"
            )
        return self
