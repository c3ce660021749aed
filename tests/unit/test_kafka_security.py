"""One source for a Kafka client's security (services/common/kafka_security.py): what the
settings turn into, and what production refuses."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from pydantic import ValidationError

from deploy.local.kafka_principals import KafkaSecrets
from services.audit.settings import AuditSettings
from services.common.kafka_security import KafkaConnection, KafkaSecurity, KafkaSecurityError
from services.projections.settings import ProjectionSettings
from services.registry.settings import RegistrySettings


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    import os

    for name in list(os.environ):
        if "KAFKA" in name or name.endswith("_ENVIRONMENT"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_scram_over_tls_is_the_default_and_needs_a_principal(clean_env: pytest.MonkeyPatch) -> None:
    connection = RegistrySettings().kafka_connection()
    assert connection.security.protocol == "SASL_SSL"
    with pytest.raises(KafkaSecurityError, match="username"):
        connection.kwargs()
    with pytest.raises(KafkaSecurityError, match="password"):
        KafkaSecurity(username="coordreg-relay").client_kwargs()


def test_each_service_reads_its_own_principal_and_shares_the_broker(
    clean_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secrets = KafkaSecrets(tmp_path / "security").ensure()
    clean_env.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    clean_env.setenv("KAFKA_CA_FILE", str(secrets.ca_file))
    clean_env.setenv("REGISTRY_KAFKA_USERNAME", "coordreg-relay")
    clean_env.setenv("REGISTRY_KAFKA_PASSWORD", "relay-secret")
    clean_env.setenv("PROJECTIONS_KAFKA_USERNAME", "coordreg-projections")
    clean_env.setenv("PROJECTIONS_KAFKA_PASSWORD_FILE", str(secrets.password_file("coordreg-projections")))
    # An unprefixed username is nobody's: a principal is never shared by accident.
    clean_env.setenv("KAFKA_USERNAME", "coordreg-admin")
    relay = RegistrySettings().kafka_connection().kwargs()
    assert relay["bootstrap_servers"] == "127.0.0.1:19092"
    assert (relay["security_protocol"], relay["sasl_mechanism"]) == ("SASL_SSL", "SCRAM-SHA-512")
    assert (relay["sasl_plain_username"], relay["sasl_plain_password"]) == ("coordreg-relay", "relay-secret")
    context = relay["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    worker = ProjectionSettings().kafka_connection().kwargs()
    assert worker["sasl_plain_username"] == "coordreg-projections"
    assert worker["sasl_plain_password"] == secrets.password("coordreg-projections")
    assert AuditSettings().kafka_connection().security.username == ""


def test_plaintext_only_when_asked_for_by_name(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
    assert RegistrySettings().kafka_connection().kwargs() == {
        "bootstrap_servers": "127.0.0.1:9092",
        "security_protocol": "PLAINTEXT",
    }
    clean_env.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")  # passwords in clear: not offered
    with pytest.raises(ValidationError):
        RegistrySettings()


@pytest.mark.parametrize("settings", [RegistrySettings, ProjectionSettings])
def test_production_refuses_plaintext(
    clean_env: pytest.MonkeyPatch, settings: type[RegistrySettings]
) -> None:
    clean_env.setenv("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
    with pytest.raises(ValidationError, match="production refuses KAFKA_SECURITY_PROTOCOL=PLAINTEXT"):
        settings(environment="production")
    assert settings(environment="development").kafka_security_protocol == "PLAINTEXT"


def test_a_child_process_gets_the_principal_under_its_prefix(tmp_path: Path) -> None:
    secrets = KafkaSecrets(tmp_path / "security").ensure()
    env = secrets.connection("127.0.0.1:1", "coordreg-audit").env("AUDIT_")
    assert env == {
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_CA_FILE": str(secrets.ca_file),
        "AUDIT_KAFKA_USERNAME": "coordreg-audit",
        "AUDIT_KAFKA_PASSWORD_FILE": str(secrets.password_file("coordreg-audit")),
    }
    plain = KafkaConnection(bootstrap_servers="b:1").env("AUDIT_")
    assert plain == {"KAFKA_BOOTSTRAP_SERVERS": "b:1", "KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"}


def test_local_secrets_are_minted_once_and_private(tmp_path: Path) -> None:
    secrets = KafkaSecrets(tmp_path / "security").ensure()
    password = secrets.password("coordreg-relay")
    ca = secrets.ca_file.read_bytes()
    assert len(password) == 48 and secrets.ensure().password("coordreg-relay") == password
    assert secrets.ca_file.read_bytes() == ca
    assert secrets.password("coordreg-projections") != password
    for path in (secrets.password_file("coordreg-relay"), secrets.broker_keystore):
        assert path.stat().st_mode & 0o077 == 0, path
    assert secrets.directory.stat().st_mode & 0o077 == 0
    # The CA's key is not kept anywhere.
    assert b"PRIVATE KEY" not in b"".join(
        p.read_bytes() for p in secrets.directory.rglob("*") if p.is_file() and p != secrets.broker_keystore
    )
