"""The two distributions, each installed into a fresh virtualenv as its users install it.

- `coordreg-contracts` (schemas/), alone: an event consumer's install. Only pydantic comes
  with it (pinned with the hashes of requirements.lock), none of the services' dependencies,
  and it decodes and verifies a real record of the topic, published by the real stack.
- `coordreg` (the repository root), `pip install .`: every console command of
  [project.scripts] answers --help without starting anything, and the installed package
  carries no development private key.

Both need PyPI (pydantic; the services' dependencies); pip's cache serves later runs.
Each virtualenv is made once per module.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.support.builders import sign_body
from tests.support.kafka import read_topic
from tests.support.stack import Stack

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"
DEV_KEY = ROOT / "deploy" / "dev-keys" / "dev-signing-key.pem"
SCRIPTS = sorted(tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"])
INSTALL_TIMEOUT = 900
COMMAND_TIMEOUT = 60

# Run by the contracts-only interpreter on the value bytes of one Kafka record.
DECODE = """
import importlib.util, json, sys
from pathlib import Path

from coordreg_contracts.envelope import Envelope, envelope_hash

raw = Path(sys.argv[1]).read_bytes()
record = json.loads(raw)
envelope = Envelope.model_validate_json(raw)
event = envelope.event()
tampered = {**record, "data": {**record["data"], "title": record["data"]["title"] + "."}}
print(json.dumps({
    "type": envelope.type,
    "event": type(event).__name__,
    "agreement_id": event.agreement_id,
    "subject": envelope.subject,
    "document_number": event.document_number,
    "hash_valid": envelope_hash(record) == envelope.hash,
    "tampered_hash_valid": envelope_hash(tampered) == envelope.hash,
    "importable": [m for m in sys.argv[2:] if importlib.util.find_spec(m) is not None],
    "prefix": sys.prefix,
}))
"""


def clean_env() -> dict[str, str]:
    """This process's environment without what would let the checkout or .venv leak in."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def run(*args: str | Path, cwd: Path, timeout: float = INSTALL_TIMEOUT) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{args}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result


def fresh_venv(path: Path) -> Path:
    """A new virtualenv without system site packages; returns its python."""
    run(sys.executable, "-m", "venv", path, cwd=path.parent)
    assert "include-system-site-packages = false" in (path / "pyvenv.cfg").read_text(encoding="utf-8")
    return path / "bin" / "python"


def lock_blocks() -> dict[str, tuple[list[str], set[str]]]:
    """requirements.lock as {name: (its pin and hash lines, the names it is required `via`)}."""
    blocks: dict[str, tuple[list[str], set[str]]] = {}
    current: str | None = None
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if line and not line[0].isspace() and not line.startswith("#"):
            current = re.split(r"[=<>!~;\[ ]", line, maxsplit=1)[0].lower().replace("_", "-")
            blocks[current] = ([line], set())
        elif current is not None and stripped.startswith("--hash"):
            blocks[current][0].append(line)
        elif current is not None and stripped.startswith("#"):
            via = stripped.lstrip("#").strip().removeprefix("via").strip()
            if via and not via.startswith("-r"):
                blocks[current][1].add(via.lower())
    return blocks


def locked_closure(roots: set[str]) -> str:
    """The pins (with hashes) of `roots` and of everything they need, by the lock's own `# via`."""
    blocks = lock_blocks()
    needed = set(roots)
    for _ in range(len(blocks)):
        grown = needed | {name for name, (_, via) in blocks.items() if via & needed}
        if grown == needed:
            break
        needed = grown
    assert roots <= set(blocks) and {"pydantic-core"} <= needed, sorted(needed)
    return "\n".join(line for name in sorted(needed) for line in blocks[name][0]) + "\n"


@pytest.fixture(scope="module")
def contracts_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv holding the contracts wheel and its pinned dependencies, nothing else."""
    work = tmp_path_factory.mktemp("contracts")
    dist = work / "dist"
    run(
        sys.executable,
        *("-m", "pip", "wheel", "--no-deps", "--no-build-isolation", ROOT / "schemas", "-w", dist),
        cwd=work,
    )
    [wheel] = dist.glob("coordreg_contracts-*.whl")
    python = fresh_venv(work / "venv")
    pins = work / "pins.txt"
    pins.write_text(locked_closure({"pydantic"}), encoding="utf-8")
    run(python, "-m", "pip", "install", "--require-hashes", "-r", pins, cwd=work)
    # --no-index: the wheel may need nothing that is not pinned above, or this fails.
    run(python, "-m", "pip", "install", "--no-index", wheel, cwd=work)
    run(python, "-m", "pip", "check", cwd=work)
    return python


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pip install .` of the repository root into a new virtualenv; returns its bin/ folder.

    The versions are held to requirements.lock's (as constraints: the resolver still proves
    that the distribution's own metadata brings everything in), and every file comes from the
    lock's hash-checked downloads: the install itself is offline (--no-index)."""
    work = tmp_path_factory.mktemp("coordreg")
    python = fresh_venv(work / "venv")
    wheels = work / "wheels"
    run(
        python,
        "-m",
        "pip",
        "download",
        "-q",
        "--require-hashes",
        "-r",
        ROOT / "requirements.lock",
        "-d",
        wheels,
        cwd=work,
    )
    constraints = work / "constraints.txt"
    constraints.write_text(
        "".join(lines[0].removesuffix("\\").strip() + "\n" for lines, _ in lock_blocks().values()),
        encoding="utf-8",
    )
    run(
        python,
        "-m",
        "pip",
        "install",
        "--no-index",
        "--find-links",
        wheels,
        "-c",
        constraints,
        ROOT,
        cwd=work,
    )
    run(python, "-m", "pip", "check", cwd=work)
    return python.parent


async def test_the_contracts_alone_decode_and_verify_a_record_of_the_topic(
    contracts_python: Path, stack: Stack, tmp_path: Path
) -> None:
    body = sign_body()
    agreement_id = (await stack.sign(body))["agreement_id"]
    records = [
        r for r in await read_topic(stack.kafka.consumer, stack.topic, 1) if r.key == agreement_id.encode()
    ]
    assert len(records) == 1
    value = tmp_path / "record.json"
    value.write_bytes(records[0].value)
    script = tmp_path / "decode.py"
    script.write_text(DECODE, encoding="utf-8")
    services = ("fastapi", "asyncpg", "aiokafka", "uvicorn", "services", "deploy")
    result = await asyncio.to_thread(run, contracts_python, script, value, *services, cwd=tmp_path)
    decoded = json.loads(result.stdout)
    assert decoded["type"] == "vn.gov.coordination.AgreementSigned.v1"
    assert decoded["event"] == "AgreementSigned"
    assert decoded["agreement_id"] == decoded["subject"] == agreement_id
    assert decoded["document_number"] == body["document_number"]
    assert decoded["hash_valid"] is True
    assert decoded["tampered_hash_valid"] is False, "the check can fail"
    assert decoded["importable"] == [], "the contracts must not bring the services' dependencies"
    assert Path(decoded["prefix"]) == contracts_python.parent.parent


@pytest.mark.parametrize("command", SCRIPTS)
def test_every_console_command_answers_help(installed: Path, command: str, tmp_path: Path) -> None:
    # A command that ignored --help would start a server or a relay and never return.
    result = run(installed / command, "--help", cwd=tmp_path, timeout=COMMAND_TIMEOUT)
    assert result.stdout.startswith("usage: "), result.stdout


def test_the_installed_package_carries_no_key_and_asks_for_one(installed: Path, tmp_path: Path) -> None:
    where = run(
        installed / "python",
        "-c",
        "import deploy, pathlib; root = pathlib.Path(deploy.__file__).parent; "
        "print(root); print(sorted(str(p) for p in root.rglob('*.pem')))",
        cwd=tmp_path,
    ).stdout.splitlines()
    package = Path(where[0])
    assert package.is_relative_to(installed.parent), "the installed copy, not the checkout"
    assert where[1] == "[]", "the wheel must not carry the development private key"
    assert (package / "demo" / "agreements.json").exists(), "package data is installed"

    missing = subprocess.run(
        [str(installed / "coordreg-token"), "demo"],
        cwd=tmp_path,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
    )
    assert missing.returncode == 2 and missing.stdout == ""
    assert len(missing.stderr.strip().splitlines()) == 1, missing.stderr
    assert "--key" in missing.stderr and "COORDREG_DEV_KEY" in missing.stderr

    token = run(installed / "coordreg-token", "demo", "--key", DEV_KEY, cwd=tmp_path, timeout=COMMAND_TIMEOUT)
    assert re.fullmatch(r"[\w-]+\.[\w-]+\.[\w-]+", token.stdout.strip()), token.stdout
