"""The Go reference checker tests/tools/tlogcheck (see its README.md): built once per version
of its sources into `.cache/tlogcheck/<hash of its sources>/`, and run with JSON on stdin.

A missing `go` or a failed build is a failure (an AssertionError), never a skip.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "tests" / "tools" / "tlogcheck"
CACHE = ROOT / ".cache" / "tlogcheck"

Json = dict[str, Any]


def _sources_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(SOURCE.iterdir()):
        if path.suffix == ".go" or path.name in ("go.mod", "go.sum"):
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def build_tlogcheck() -> Path:
    """The built Go program, reused while its sources are unchanged."""
    folder = CACHE / _sources_digest()
    binary = folder / "tlogcheck"
    folder.mkdir(parents=True, exist_ok=True)
    with (CACHE / ".lock").open("w") as guard:  # two runs at once build it once
        fcntl.flock(guard, fcntl.LOCK_EX)
        if not binary.exists():
            go = shutil.which("go")
            assert go is not None, "the Go toolchain (`go`) is needed to build tests/tools/tlogcheck"
            env = {**os.environ, "GOTOOLCHAIN": "local"}
            env["GOFLAGS"] = " ".join([*env.get("GOFLAGS", "").split(), "-mod=readonly"])
            modcache = subprocess.run(
                [go, "env", "GOMODCACHE"], env=env, capture_output=True, text=True, check=True, timeout=60
            ).stdout.strip()
            assert modcache and not Path(modcache).resolve().is_relative_to(ROOT), (
                f"the Go module cache ({modcache}) must not be inside the checkout"
            )
            partial = folder / "tlogcheck.partial"
            done = subprocess.run(
                [go, "build", "-trimpath", "-o", str(partial), "."],
                cwd=SOURCE,
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
            assert done.returncode == 0, f"go build tests/tools/tlogcheck failed:\n{done.stderr}"
            partial.rename(binary)
            for stale in CACHE.iterdir():  # builds of earlier sources
                if stale.is_dir() and stale != folder:
                    shutil.rmtree(stale)
    return binary


def run_tlogcheck(binary: Path, *args: str, request: Json | None = None) -> Json:
    """Runs `tlogcheck ARGS` (the request as JSON on stdin); its JSON answer."""
    done = subprocess.run(
        [str(binary), *args],
        input=json.dumps(request) if request is not None else None,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"tlogcheck {' '.join(args)} failed:\n{done.stderr}"
    result: Json = json.loads(done.stdout)
    return result
