"""How a Kafka client proves who it is: the one place that turns settings into aiokafka's
connection arguments (docs/SECURITY.md "Kafka principals", docs/adr/0001).

Every aiokafka client of the project (producer, consumer, admin, the low-level client that
writes ACLs) is built from a `KafkaConnection`: the bootstrap servers and a `KafkaSecurity`.
SASL_SSL with SCRAM-SHA-512 is the default; PLAINTEXT only when asked for by name, and a
production service refuses it (services/common/settings.py).
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, SecretStr

SecurityProtocol = Literal["SASL_SSL", "PLAINTEXT"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256"]


class KafkaSecurityError(ValueError):
    """The security settings cannot make a client: the message says which setting is missing."""


class KafkaSecurity(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    protocol: SecurityProtocol = "SASL_SSL"
    mechanism: SaslMechanism = "SCRAM-SHA-512"
    username: str = ""
    # The password inline, or the path of a file holding it (a mounted Secret): the file wins,
    # and is read again for each new client, so a rotated password needs no restart.
    password: SecretStr = SecretStr("")
    password_file: str = ""
    # The CA that signed the brokers' certificates (PEM); empty: the system's trust store.
    ca_file: str = ""

    @property
    def plaintext(self) -> bool:
        return self.protocol == "PLAINTEXT"

    def secret(self) -> str:
        if self.password_file:
            return Path(self.password_file).read_text(encoding="utf-8").strip()
        return self.password.get_secret_value()

    def ssl_context(self) -> ssl.SSLContext:
        # Host names checked, a verified chain required, as for any TLS server.
        return ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ca_file or None)

    def client_kwargs(self) -> dict[str, Any]:
        """aiokafka's security arguments (the same names for producer, consumer, admin and client)."""
        if self.plaintext:
            return {"security_protocol": "PLAINTEXT"}
        if not self.username:
            raise KafkaSecurityError(
                "Kafka SASL_SSL needs a username (*_KAFKA_USERNAME), or set "
                "KAFKA_SECURITY_PROTOCOL=PLAINTEXT for a broker without authentication"
            )
        password = self.secret()
        if not password:
            raise KafkaSecurityError(
                f"Kafka principal {self.username!r} has no password (*_KAFKA_PASSWORD or *_KAFKA_PASSWORD_FILE)"
            )
        return {
            "security_protocol": "SASL_SSL",
            "ssl_context": self.ssl_context(),
            "sasl_mechanism": self.mechanism,
            "sasl_plain_username": self.username,
            "sasl_plain_password": password,
        }


PLAINTEXT = KafkaSecurity(protocol="PLAINTEXT")


class KafkaConnection(BaseModel):
    """Where the brokers are and who this client is there."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bootstrap_servers: str
    security: KafkaSecurity = PLAINTEXT

    def kwargs(self) -> dict[str, Any]:
        """bootstrap_servers and the security arguments, for any aiokafka client."""
        return {"bootstrap_servers": self.bootstrap_servers, **self.security.client_kwargs()}

    def at(self, bootstrap_servers: str) -> KafkaConnection:
        """The same principal at other addresses (one node of a cluster)."""
        return self.model_copy(update={"bootstrap_servers": bootstrap_servers})

    def env(self, prefix: str = "") -> dict[str, str]:
        """The environment a child process reads these settings from (services/common/settings.py):
        the address and protocol without a prefix, the principal under `prefix` (REGISTRY_...)."""
        security = self.security
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "KAFKA_SECURITY_PROTOCOL": security.protocol,
        }
        if security.plaintext:
            return env
        env["KAFKA_SASL_MECHANISM"] = security.mechanism
        env["KAFKA_CA_FILE"] = security.ca_file
        env[f"{prefix}KAFKA_USERNAME"] = security.username
        if security.password_file:
            env[f"{prefix}KAFKA_PASSWORD_FILE"] = security.password_file
        else:
            env[f"{prefix}KAFKA_PASSWORD"] = security.password.get_secret_value()
        return env
