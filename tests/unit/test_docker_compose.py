"""docker-compose.yml cannot run here (no Docker engine): check it is a well-formed stack instead."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    return data


def test_services_and_official_images() -> None:
    services = compose()["services"]
    assert {"postgres", "kafka", "topics", "registry", "relay", "projections", "demo"} <= set(services)
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["kafka"]["image"].startswith("apache/kafka:")
    for name in ("registry", "relay", "projections", "topics", "demo"):
        assert services[name]["build"] == "." and (ROOT / "Dockerfile").exists()


def test_dependencies_exist_and_are_health_gated() -> None:
    services = compose()["services"]
    for name, service in services.items():
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            assert condition["condition"] in {"service_healthy", "service_completed_successfully"}
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{dependency} has no health check"


def test_commands_name_real_modules_and_ports_match_the_contract() -> None:
    services = compose()["services"]
    for service in services.values():
        command = service.get("command")
        if command and command[:2] == ["python", "-m"]:
            assert importlib.util.find_spec(command[2]) is not None, command
    assert services["registry"]["ports"] == ["8000:8000"]
    assert services["projections"]["ports"] == ["8001:8001"]
    env = services["registry"]["environment"]
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092" and env["DATABASE_URL"].startswith("postgresql://")


def test_dockerfile_installs_the_locked_dependencies() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "--require-hashes -r requirements.lock" in dockerfile
    assert "USER " in dockerfile, "the services must not run as root"
