"""schemas/asyncapi.yaml is accepted by the official AsyncAPI parser (`@asyncapi/parser`, Node.js).

The parser is pinned with its whole dependency tree and their integrity hashes in
tests/tools/asyncapi/package-lock.json. The first run installs it with `npm ci` into
`.cache/asyncapi-parser/<hash of the lock>/` (a clean clone needs only Node.js 20 and the
npm registry); later runs reuse that install, and a changed lock gets a fresh one.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from coordreg_contracts import export

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tests" / "tools" / "asyncapi"
TOOL_FILES = ("package.json", "package-lock.json", "check.mjs")
CACHE = ROOT / ".cache" / "asyncapi-parser"
ERROR = 0  # the parser's (Spectral's) DiagnosticSeverity.Error
MIN_NODE = 20

Diagnostics = dict[str, list[dict[str, Any]]]


def _node_major() -> int:
    node = shutil.which("node")
    assert node is not None, "Node.js (20 or later) is needed to run the official AsyncAPI parser"
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True, timeout=30)
    return int(version.stdout.strip().lstrip("v").split(".")[0])


@pytest.fixture(scope="module")
def parser_dir() -> Path:
    """The pinned parser, installed once per lock file content."""
    assert _node_major() >= MIN_NODE, f"the AsyncAPI parser needs Node.js {MIN_NODE} or later"
    npm = shutil.which("npm")
    assert npm is not None, "npm is needed to install the pinned AsyncAPI parser"
    lock = (TOOL / "package-lock.json").read_bytes() + (TOOL / "package.json").read_bytes()
    target = CACHE / hashlib.sha256(lock).hexdigest()[:16]
    target.mkdir(parents=True, exist_ok=True)
    installed = target / ".installed"
    # Two test runs at once must not both run `npm ci` in the same folder.
    with (target / ".lock").open("w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        for name in TOOL_FILES:
            shutil.copyfile(TOOL / name, target / name)
        if not installed.exists():
            # --ignore-scripts: a dependency's postinstall (telemetry) has no business running here.
            subprocess.run(
                [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=target,
                check=True,
                timeout=600,
            )
            installed.touch()
    return target


def parse(parser_dir: Path, *documents: Path) -> Diagnostics:
    result = subprocess.run(
        ["node", "check.mjs", *(str(d) for d in documents)],
        cwd=parser_dir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report: Diagnostics = json.loads(result.stdout)
    return report


def errors(diagnostics: list[dict[str, Any]]) -> list[str]:
    return [f"{'.'.join(d['path'])}: {d['message']}" for d in diagnostics if d["severity"] == ERROR]


def test_the_official_parser_accepts_the_asyncapi_document(parser_dir: Path, tmp_path: Path) -> None:
    published = ROOT / "schemas" / "asyncapi.yaml"
    # The same check on a document with an OpenAPI-style discriminator (what the exporter
    # once wrote) shows the parser does report errors here, so a clean result means something.
    document = export.asyncapi_document()
    items = document["components"]["schemas"]["AgreementAmended"]["properties"]["changes"]["items"]
    items["discriminator"] = {"propertyName": "op", "mapping": {"add_party": "#/components/schemas/AddParty"}}
    broken = tmp_path / "asyncapi.yaml"
    broken.write_text(export.render_yaml(document), encoding="utf-8")

    report = parse(parser_dir, published, broken)

    assert errors(report[str(published)]) == []
    assert (
        "components.schemas.AgreementAmended.properties.changes.items.discriminator: "
        '"discriminator" property type must be string'
    ) in errors(report[str(broken)])
