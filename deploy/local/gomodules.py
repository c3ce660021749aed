"""Go modules fetched by `module@version` outside any go.mod of this repository, checked against
the hashes committed in deploy/local/go-modules.sum (docs/adr/0006-pinned-downloads.md): the
standard witnesses `make run` builds (deploy/local/witnesses.py) and the tools the tests build.

`go mod download -json` reports the h1: hash Go computed of the zip and of the go.mod it fetched;
a module whose hashes differ from the committed ones, or that the list does not pin, is refused
(ModuleRefused) before anything of it is built or read."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

MODULE_SUMS = Path(__file__).resolve().parent / "go-modules.sum"


class ModuleRefused(Exception):
    """A Go module that could not be fetched, or whose hashes are not the committed ones."""


def pinned_sums(path: Path = MODULE_SUMS) -> dict[str, tuple[str, str]]:
    """`module@version` -> (h1 of its zip, h1 of its go.mod)."""
    zips: dict[str, str] = {}
    mods: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        module, version, digest = line.split()
        if version.endswith("/go.mod"):
            mods[f"{module}@{version.removesuffix('/go.mod')}"] = digest
        else:
            zips[f"{module}@{version}"] = digest
    if zips.keys() != mods.keys():
        raise ModuleRefused(f"{path}: every module needs both its zip and its go.mod hash")
    return {module: (zips[module], mods[module]) for module in zips}


def check_download(info: dict[str, Any], sums: dict[str, tuple[str, str]] | None = None) -> None:
    """Raises ModuleRefused unless `go mod download -json`'s answer matches the committed hashes."""
    pinned = pinned_sums() if sums is None else sums
    module = f"{info.get('Path')}@{info.get('Version')}"
    if "Error" in info:
        raise ModuleRefused(f"go mod download {module}: {info['Error']}")
    if module not in pinned:
        raise ModuleRefused(f"{module} is not pinned in {MODULE_SUMS.name}")
    found = (info.get("Sum"), info.get("GoModSum"))
    if found != pinned[module]:
        raise ModuleRefused(
            f"refusing {module}: Go computed {found}, {MODULE_SUMS.name} pins {pinned[module]}"
        )


def download_pinned(go: str, module: str, *, cwd: Path, env: dict[str, str]) -> dict[str, Any]:
    """`go mod download -json module@version`, checked; its answer (Dir: the unpacked module)."""
    done = subprocess.run(
        [go, "mod", "download", "-json", module],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    try:
        info: dict[str, Any] = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise ModuleRefused(f"go mod download {module} failed:\n{done.stderr[-3000:]}") from None
    check_download(info)
    return info


def go_environment(gobin: Path) -> dict[str, str]:
    """The environment a pinned build runs in: this machine's Go (no toolchain download), the
    programs installed into `gobin`, and the module's own go.sum trusted for its dependencies."""
    return {**os.environ, "GOBIN": str(gobin), "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"}


def install_pinned(go: str, module: str, version: str, package: str, *, gobin: Path) -> Path:
    """`go install module/package@version` into `gobin`, once `module@version` is checked
    against the committed hashes (download_pinned); the program's path. ModuleRefused, with
    Go's last words, if the build fails."""
    env = go_environment(gobin)
    download_pinned(go, f"{module}@{version}", cwd=gobin, env=env)
    done = subprocess.run(
        [go, "install", f"{module}/{package}@{version}"],
        cwd=gobin,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if done.returncode != 0:
        raise ModuleRefused(f"go install {module}/{package}@{version} failed:\n{done.stderr[-4000:]}")
    return gobin / package.rsplit("/", 1)[-1]
