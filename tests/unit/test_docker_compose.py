"""docker-compose.yml and the Dockerfile cannot run here (no Docker engine): check that they
are a well-formed stack instead, and that the image cannot carry the development private key."""

from __future__ import annotations

import fnmatch
import importlib.util
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEV_KEY = "deploy/dev-keys/dev-signing-key.pem"


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    return data


def console_scripts() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    scripts: dict[str, str] = project["project"]["scripts"]
    return scripts


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text(encoding="utf-8"))
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, arguments = line.partition(" ")
            found.append((keyword.upper(), arguments.strip()))
    return found


def _pattern(pattern: str) -> re.Pattern[str]:
    # Docker's .dockerignore syntax (moby/patternmatcher): `**` spans directories, `*` and `?`
    # stay within one path element.
    out = ""
    index = 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            out, index = out + "(?:.*/)?", index + 3
        elif pattern.startswith("**", index):
            out, index = out + ".*", index + 2
        elif pattern[index] == "*":
            out, index = out + "[^/]*", index + 1
        elif pattern[index] == "?":
            out, index = out + "[^/]", index + 1
        else:
            out, index = out + re.escape(pattern[index]), index + 1
    return re.compile(out + r"\Z")


def dockerignored(path: str) -> bool:
    """Whether `path` stays out of the build context: the last matching rule wins, and a rule
    that matches a directory takes everything below it."""
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for raw in lines:
        rule = raw.strip()
        if not rule or rule.startswith("#"):
            continue
        negated = rule.startswith("!")
        regex = _pattern(rule.lstrip("!").strip().strip("/"))
        if any(regex.match(candidate) for candidate in candidates):
            excluded = not negated
    return excluded


def test_services_and_official_images() -> None:
    services = compose()["services"]
    assert {"postgres", "kafka", "topics", "registry", "relay", "projections", "demo", "console"} <= set(
        services
    )
    # Pulled images are named by a variable (a digest pin in a release: docs/adr/0006), whose
    # default is the official image.
    assert re.fullmatch(r"\$\{POSTGRES_IMAGE:-postgres:[^}]+\}", services["postgres"]["image"])
    assert re.fullmatch(r"\$\{KAFKA_IMAGE:-apache/kafka:[^}]+\}", services["kafka"]["image"])
    for name in ("registry", "relay", "projections", "topics", "demo", "console"):
        assert services[name]["build"] == "." and (ROOT / "Dockerfile").exists()


def test_dependencies_exist_and_are_health_gated() -> None:
    services = compose()["services"]
    for name, service in services.items():
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            assert condition["condition"] in {"service_healthy", "service_completed_successfully"}
            if condition["condition"] == "service_healthy":
                assert "healthcheck" in services[dependency], f"{dependency} has no health check"


def test_commands_are_console_scripts_of_the_distribution_and_ports_match_the_contract() -> None:
    services = compose()["services"]
    scripts = console_scripts()
    commands = {name: service["command"] for name, service in services.items() if "command" in service}
    assert set(commands) >= {"topics", "registry", "relay", "projections", "demo", "console"}
    for name, command in commands.items():
        assert isinstance(command, list), f"{name}: exec form, so no shell stands between"
        assert command[0] in scripts, f"{name} runs {command[0]!r}, not a [project.scripts] command"
    [cmd] = [arguments for keyword, arguments in instructions() if keyword == "CMD"]
    assert yaml.safe_load(cmd)[0] in scripts
    for target in scripts.values():
        module, _, function = target.partition(":")
        assert function and importlib.util.find_spec(module) is not None, target
    assert services["registry"]["ports"] == ["8000:8000"]
    assert services["projections"]["ports"] == ["8001:8001"]
    env = services["registry"]["environment"]
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092" and env["DATABASE_URL"].startswith("postgresql://")


def test_the_console_reaches_the_services_over_http_only_and_listens_for_the_host() -> None:
    console = compose()["services"]["console"]
    assert console["command"] == ["coordreg-console"] and console["ports"] == ["8005:8005"]
    # Its own environment replaces the shared one (a YAML merge is shallow): no database, no broker.
    env = console["environment"]
    assert not {"DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS"} & set(env)
    assert (env["CONSOLE_REGISTRY_URL"], env["CONSOLE_PROJECTIONS_URL"]) == (
        "http://registry:8000",
        "http://projections:8001",
    )
    assert set(console["depends_on"]) == {"registry", "projections"}
    assert "8005/healthz" in " ".join(console["healthcheck"]["test"])
    # The image makes every server listen beyond the container's loopback, and says on which ports.
    [env_line] = [
        arguments for keyword, arguments in instructions() if keyword == "ENV" and "_HOST=" in arguments
    ]
    hosts = dict(pair.split("=") for pair in env_line.split())
    assert hosts == {"REGISTRY_HOST": "0.0.0.0", "PROJECTIONS_HOST": "0.0.0.0", "CONSOLE_HOST": "0.0.0.0"}
    [exposed] = [arguments.split() for keyword, arguments in instructions() if keyword == "EXPOSE"]
    assert exposed == ["8000", "8001", "8005"]


def test_dockerfile_installs_the_locked_dependencies() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert "--require-hashes -r requirements.lock" in dockerfile
    # The distributions are installed (not a source tree on PYTHONPATH): the image runs what a
    # wheel holds, so what the wheel leaves out (the development key) is not there.
    assert re.search(r"pip install --no-deps (--\S+ )*\./schemas \.", dockerfile)
    assert "PYTHONPATH" not in dockerfile
    assert "USER " in dockerfile, "the services must not run as root"


def test_the_image_cannot_carry_the_development_key() -> None:
    assert (ROOT / DEV_KEY).exists(), "the checkout keeps it (make run, the tests)"
    assert dockerignored(DEV_KEY), ".dockerignore must keep the key out of the build context"
    copied: list[str] = []
    for keyword, arguments in instructions():
        assert "dev-keys" not in arguments, f"{keyword} {arguments}: nothing may name deploy/dev-keys"
        if keyword in {"COPY", "ADD"}:
            words = [word for word in shlex.split(arguments) if not word.startswith("--")]
            copied += words[:-1]
    assert copied, "the Dockerfile copies the sources it installs"
    for source in copied:
        # What the image needs is still in the context, `deploy` among it: the key is left out
        # by its own rule, not because nothing is copied.
        assert not dockerignored(source.rstrip("/")), f"{source} is excluded from the build context"
    assert (
        "deploy" in copied
        and not dockerignored("deploy/tokens.py")
        and not dockerignored("deploy/demo/agreements.json")
    )
    # The installed package leaves it out too (the wheel the image installs).
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    excludes = project["tool"]["hatch"]["build"]["targets"]["wheel"]["exclude"]
    assert any(fnmatch.fnmatch(DEV_KEY, pattern) for pattern in excludes)


def test_the_demo_loader_and_the_console_get_the_key_from_a_read_only_bind_mount() -> None:
    services = compose()["services"]
    keys = {
        "demo": services["demo"]["command"][services["demo"]["command"].index("--key") + 1],
        "console": services["console"]["environment"]["CONSOLE_DEV_SIGNING_KEY"],
    }
    for name, key in keys.items():
        [volume] = services[name]["volumes"]
        source, target, mode = volume.split(":")
        assert (source, mode) == ("./deploy/dev-keys", "ro"), name
        assert key == f"{target}/{Path(DEV_KEY).name}", name


def test_dockerignore_matching_follows_docker_rules() -> None:
    # The helper above decides the key check: prove it on Docker's own rules.
    assert _pattern("**/*.pem").match("a/b/c.pem") and _pattern("**/*.pem").match("c.pem")
    assert _pattern("deploy/*.pem").match("deploy/x.pem") and not _pattern("deploy/*.pem").match(
        "deploy/a/x.pem"
    )
    assert dockerignored(".git/config") and dockerignored("services/x/__pycache__/y.pyc")
    assert not dockerignored("services/registry/settings.py")
