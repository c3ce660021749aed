"""`make run`'s fixed addresses (deploy/local/stack.py): the defaults, the variables that move
them, and the one line that refuses a port. No sockets here; tests/integration/test_stack_ports.py
binds real ones."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from deploy.local.postgres import LocalPostgres
from deploy.local.stack import PlannedPort, StackSettings, clash, env_variable, planned_ports, refusal
from services.audit.settings import AuditSettings
from services.console.settings import ConsoleSettings
from services.projections.settings import ProjectionSettings
from services.registry.settings import RegistrySettings

ROOT = Path(__file__).resolve().parents[2]
VARIABLES = {
    "kafka_port": "COORDREG_KAFKA_PORT",
    "kafka_controller_port": "COORDREG_KAFKA_CONTROLLER_PORT",
    "postgres_port": "COORDREG_POSTGRES_PORT",
    "registry_port": "REGISTRY_PORT",
    "projections_port": "PROJECTIONS_PORT",
    "console_port": "CONSOLE_PORT",
    "litewitness_1_port": "COORDREG_LITEWITNESS_1_PORT",
    "litewitness_2_port": "COORDREG_LITEWITNESS_2_PORT",
    "omniwitness_port": "COORDREG_OMNIWITNESS_PORT",
    "database_url": "DATABASE_URL",
    "kafka_bootstrap_servers": "KAFKA_BOOTSTRAP_SERVERS",
    "local_dir": "COORDREG_LOCAL_DIR",
}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    # The developer's shell (or CI) may set any of them; the defaults are what is under test.
    for name in VARIABLES.values():
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_every_field_is_read_from_the_documented_variable() -> None:
    assert {field: env_variable(field) for field in StackSettings.model_fields} == VARIABLES


def test_readme_documents_every_variable() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert [name for name in VARIABLES.values() if f"`{name}`" not in readme] == []


def test_defaults_are_the_fixed_addresses(clean_env: pytest.MonkeyPatch) -> None:
    settings = StackSettings()
    assert settings.kafka_port == 9092
    assert settings.postgres_port == 5432
    assert (settings.kafka_controller_port, settings.registry_port, settings.projections_port) == (
        9093,
        8000,
        8001,
    )
    assert (settings.litewitness_1_port, settings.litewitness_2_port, settings.omniwitness_port) == (
        8060,
        8061,
        8062,
    )
    assert (settings.database_url, settings.kafka_bootstrap_servers) == ("", "")
    assert settings.local_dir == ROOT / ".local"


def test_defaults_agree_with_the_services_defaults(clean_env: pytest.MonkeyPatch) -> None:
    """A service, the audit tool or an event consumer started with no settings finds `make run`."""
    stack = StackSettings()
    local_url = LocalPostgres(Path("unused"), stack.postgres_port).url
    for settings in (RegistrySettings, ProjectionSettings, AuditSettings):
        fields = settings.model_fields
        assert fields["kafka_bootstrap_servers"].default == f"127.0.0.1:{stack.kafka_port}"
        assert fields["database_url"].default == local_url
        assert urlsplit(local_url).port == 5432
    assert RegistrySettings.model_fields["port"].default == stack.registry_port
    assert ProjectionSettings.model_fields["port"].default == stack.projections_port
    assert ConsoleSettings.model_fields["port"].default == stack.console_port


def test_variables_move_the_ports(clean_env: pytest.MonkeyPatch) -> None:
    moved = {
        "COORDREG_POSTGRES_PORT": 15432,
        "COORDREG_KAFKA_PORT": 19092,
        "COORDREG_KAFKA_CONTROLLER_PORT": 19093,
        "REGISTRY_PORT": 18000,
        "PROJECTIONS_PORT": 18001,
        "CONSOLE_PORT": 18005,
        "COORDREG_LITEWITNESS_1_PORT": 18060,
        "COORDREG_LITEWITNESS_2_PORT": 18061,
        "COORDREG_OMNIWITNESS_PORT": 18062,
    }
    for name, port in moved.items():
        clean_env.setenv(name, str(port))
    assert {planned.variable: planned.port for planned in planned_ports(StackSettings())} == moved


def test_servers_given_from_outside_are_neither_started_nor_checked(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:6543/postgres")
    clean_env.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:29092")
    assert [planned.what for planned in planned_ports(StackSettings())] == [
        "registry",
        "projections",
        "console",
        "witness litewitness-1",
        "witness litewitness-2",
        "witness omniwitness",
    ]


def test_an_empty_variable_means_the_default(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("COORDREG_KAFKA_PORT", "")
    clean_env.setenv("REGISTRY_PORT", "")
    settings = StackSettings()
    assert (settings.kafka_port, settings.registry_port) == (9092, 8000)


@pytest.mark.parametrize("value", ["0", "65536", "ninety"])
def test_a_port_outside_tcp_range_is_refused(clean_env: pytest.MonkeyPatch, value: str) -> None:
    clean_env.setenv("COORDREG_KAFKA_PORT", value)
    with pytest.raises(ValueError, match="kafka_port"):
        StackSettings()


KAFKA = PlannedPort(9092, "Kafka", "COORDREG_KAFKA_PORT")
POSTGRES = PlannedPort(5432, "PostgreSQL", "COORDREG_POSTGRES_PORT")
REGISTRY = PlannedPort(8000, "registry", "REGISTRY_PORT")


def in_use() -> OSError:
    return OSError(errno.EADDRINUSE, os.strerror(errno.EADDRINUSE))


def test_one_port_in_use_is_one_line_naming_it_and_its_variable() -> None:
    assert (
        refusal([(KAFKA, in_use())]) == "port 9092 (Kafka) is in use; set COORDREG_KAFKA_PORT to another port"
    )


def test_several_ports_in_use_are_one_line_naming_every_variable() -> None:
    line = refusal([(POSTGRES, in_use()), (KAFKA, in_use())])
    assert line == (
        "ports 5432 (PostgreSQL), 9092 (Kafka) are in use; "
        "set COORDREG_POSTGRES_PORT, COORDREG_KAFKA_PORT to other ports"
    )


def test_a_port_that_cannot_be_bound_for_another_reason_says_why() -> None:
    denied = OSError(errno.EACCES, os.strerror(errno.EACCES))
    line = refusal([(KAFKA, in_use()), (REGISTRY, denied)])
    assert line == (
        "port 9092 (Kafka) is in use; set COORDREG_KAFKA_PORT to another port; "
        "port 8000 (registry) cannot be used (Permission denied); set REGISTRY_PORT to another port"
    )
    assert "\n" not in line


def test_two_servers_on_one_port_are_refused_before_any_bind() -> None:
    moved = PlannedPort(8000, "PostgreSQL", "COORDREG_POSTGRES_PORT")
    assert clash([KAFKA, REGISTRY]) is None
    assert clash([moved, KAFKA, REGISTRY]) == (
        "port 8000 is set for both PostgreSQL (COORDREG_POSTGRES_PORT) and registry (REGISTRY_PORT); "
        "set one of them to another port"
    )
