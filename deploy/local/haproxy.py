"""HAProxy in front of the HTTP services of `make cluster` (and of tests/cluster).

The binary is the machine's `haproxy` if there is one, else Debian's package and the libraries
it lacks, fetched with `apt-get download` at the versions pinned in haproxy-debs.sha256, each
.deb checked against its committed SHA-256, and unpacked under `.cache/` (no root, nothing
installed system-wide), reused the next time.

Each frontend spreads requests over its backends round-robin and checks each backend's
`/readyz` (the console's `/healthz`) every half second: two failed checks take a backend out,
two good ones bring it back. Each response names the instance that served it (`X-Served-By`).
A request whose connection to a backend fails is sent to another (`option redispatch`); a
request already sent is never resent by HAProxy, since a command is not idempotent without
its Idempotency-Key: the client retries it with its key.
"""

from __future__ import annotations

import csv
import fcntl
import io
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.parse import unquote

from deploy.checksums import read_sums, sums_digest, verify_directory
from deploy.local.kafka import MissingPrerequisite
from deploy.local.processes import LocalServer, die_with_parent, port_open

# Debian 12's haproxy and the libraries of its that a minimal system lacks: each pinned by
# version and SHA-256 (docs/adr/0006-pinned-downloads.md).
DEB_SUMS = Path(__file__).resolve().parent / "haproxy-debs.sha256"


def pinned_packages() -> list[str]:
    """`name=version` of each .deb the sums list (`<name>_<version>_<arch>.deb`)."""
    packages = []
    for deb in read_sums(DEB_SUMS):
        name, version, _arch = deb.removesuffix(".deb").split("_")
        packages.append(f"{name}={unquote(version)}")
    return packages


_HOST = "127.0.0.1"


@dataclass(frozen=True)
class Binary:
    path: Path
    env: dict[str, str]


def ensure_haproxy(cache_root: Path) -> Binary:
    """The haproxy to run: the machine's, else Debian's unpacked under `cache_root`."""
    found = shutil.which("haproxy")
    if found is not None:
        return Binary(Path(found), {})
    home = cache_root / "haproxy"
    root = home / "root"
    binary = Binary(root / "usr/sbin/haproxy", {"LD_LIBRARY_PATH": str(root / "usr/lib/x86_64-linux-gnu")})
    complete = home / "download-complete"
    # The marker names the list the .debs were checked against: an unpacked copy checked
    # against another list (or none, before the check existed) is fetched and checked again.
    verified = f"verified against {DEB_SUMS.name} {sums_digest(DEB_SUMS)}\n"
    if complete.exists() and complete.read_text().endswith(verified):
        return binary
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise MissingPrerequisite(
            "the cluster's load balancer needs HAProxy on PATH (e.g. `apt-get install haproxy`)"
        )
    home.mkdir(parents=True, exist_ok=True)
    with (home / "download.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if complete.exists() and complete.read_text().endswith(verified):
            return binary
        complete.unlink(missing_ok=True)
        debs = home / "debs"
        shutil.rmtree(debs, ignore_errors=True)
        debs.mkdir()
        download = ["apt-get", "download", *pinned_packages()]
        result = subprocess.run(download, cwd=debs, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            # Package lists may be missing on a fresh machine.
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, check=False)
            result = subprocess.run(download, cwd=debs, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise MissingPrerequisite(
                f"could not fetch HAProxy's pinned packages with apt-get download (a version gone "
                f"from the mirror needs a new {DEB_SUMS.name}): {result.stderr.strip()}"
            )
        # Unpacked only once each .deb is the one whose hash is committed.
        verify_directory(debs, DEB_SUMS, "*.deb")
        shutil.rmtree(root, ignore_errors=True)
        for deb in sorted(debs.glob("*.deb")):
            subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True, capture_output=True)
        check = subprocess.run(
            [str(binary.path), "-v"],
            capture_output=True,
            text=True,
            env={**os.environ, **binary.env},
            check=False,
        )
        if check.returncode != 0:
            raise MissingPrerequisite(f"the unpacked HAProxy does not run: {check.stderr.strip()}")
        complete.write_text(check.stdout.splitlines()[0] + "\n" + verified)
    return binary


@dataclass(frozen=True)
class Frontend:
    name: str
    port: int
    backends: tuple[int, ...]  # the loopback ports of the service's instances
    # What says an instance may take requests: the APIs' /readyz (their database answers); the
    # console's /healthz, since it holds no connection and tells the person itself, in
    # Vietnamese, when the registry or the projections do not answer.
    check_path: str = "/readyz"


def config(frontends: list[Frontend], stats_port: int | None = None, admin_socket: Path | None = None) -> str:
    lines = [
        "global",
        "    maxconn 4096",
        # Read-only runtime API on a local socket: which backends HAProxy sends requests to.
        *([f"    stats socket {admin_socket} mode 600 level user"] if admin_socket else []),
        "defaults",
        "    mode http",
        "    timeout connect 2s",
        "    timeout client 60s",
        "    timeout server 60s",
        "    retries 2",
        "    option redispatch",
        "    option http-keep-alive",
        "    default-server inter 500ms fall 2 rise 2",
    ]
    if stats_port is not None:
        lines += [
            "frontend stats",
            f"    bind {_HOST}:{stats_port}",
            "    stats enable",
            "    stats uri /stats",
        ]
    for frontend in frontends:
        lines += [
            f"frontend {frontend.name}",
            f"    bind {_HOST}:{frontend.port}",
            f"    default_backend {frontend.name}-instances",
            f"backend {frontend.name}-instances",
            "    balance roundrobin",
            f"    option httpchk GET {frontend.check_path}",
            "    http-check expect status 200",
            # Which instance answered: for an operator's curl -i, and for the tests that kill it.
            "    http-response set-header X-Served-By %[srv_name]",
        ]
        lines += [
            f"    server {frontend.name}-{i} {_HOST}:{port} check"
            for i, port in enumerate(frontend.backends, 1)
        ]
    return "\n".join(lines) + "\n"


class LocalHaproxy(LocalServer):
    def __init__(self, data_dir: Path, cache_root: Path, frontends: list[Frontend]) -> None:
        self.data_dir = data_dir
        self.cache_root = cache_root
        self.frontends = frontends
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._socket_dir: Path | None = None

    def start(self, timeout: float = 30) -> None:
        binary = ensure_haproxy(self.cache_root)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        path = self.data_dir / "haproxy.cfg"
        path.write_text(config(self.frontends, admin_socket=self.admin_socket))
        self._log = (self.data_dir / "haproxy.log").open("ab")
        # -db: foreground, so it is our child and dies with us.
        self._process = subprocess.Popen(
            [str(binary.path), "-db", "-f", str(path)],
            env={**os.environ, **binary.env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"haproxy exited with {self._process.returncode}; see {self.data_dir}/haproxy.log"
                )
            if all(port_open(frontend.port) for frontend in self.frontends):
                return
            time.sleep(0.1)
        raise TimeoutError(f"haproxy did not listen in {timeout:.0f} s")

    @property
    def admin_socket(self) -> Path:
        # A socket's path must fit in 108 bytes; a test's data dir may not.
        if self._socket_dir is None:
            self._socket_dir = Path(tempfile.mkdtemp(prefix="coordreg-haproxy-"))
        return self._socket_dir / "admin.sock"

    def server_status(self, frontend: str, number: int) -> str | None:
        """What HAProxy's health checks make of `frontend`'s `number`th backend (from 1): `UP`,
        `DOWN`, or on the way between (`UP 1/2`: one check failed, requests still go there;
        `DOWN 1/2`); None when HAProxy does not answer."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(2)
                conn.connect(str(self.admin_socket))
                conn.sendall(b"show stat\n")
                answer = b"".join(iter(lambda: conn.recv(65536), b""))
        except OSError:
            return None
        rows = csv.DictReader(io.StringIO(answer.decode().removeprefix("# ")))
        for row in rows:
            if row["pxname"] == f"{frontend}-instances" and row["svname"] == f"{frontend}-{number}":
                return str(row["status"])
        return None

    def server_up(self, frontend: str, number: int) -> bool:
        """Whether HAProxy sends `frontend`'s requests to its `number`th backend (from 1) as a
        fully healthy one: its health checks have found it ready, not merely that it answers."""
        return self.server_status(frontend, number) == "UP"

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
            self._socket_dir = None
