"""Standard C2SP tlog-witness programs, run on loopback for the tests: `litewitness` (with its
`witnessctl`) from filippo.io/torchwood, and `omniwitness` from github.com/transparency-dev/witness.

Both are built once per version from the Go module proxy into `.cache/witnesses/`, each module
checked first against tests/tools/go-modules.sum (its own go.sum pins the rest). A missing `go`
or a failed build is a failure (an AssertionError), never a skip.

Each witness gets a fresh Ed25519 key, its own state folder and a port on 127.0.0.1, and is told
the one log it witnesses: the log's origin and its verifier key (Go note format, type 0x01).
It then answers `POST <url>/add-checkpoint` with timestamped cosignature/v1 lines (type 0x04),
which its `vkey` verifies. Stopping one keeps its state; starting it again resumes from it.

How each learns its key and the log, read from their sources:

* litewitness signs through an ssh-agent (`-ssh-agent <socket>`, `-key <hex SHA-256 of the
  public key>`), keeps its state in SQLite (`-db`), and reads the logs it accepts from that
  database, where `witnessctl add-log -origin` and `add-key -origin -key <vkey>` put them.
* omniwitness reads a note signer key (`PRIVATE+KEY+<name>+<id>+<base64(0x01 or 0x04 || seed)>`)
  from `--private_key_path`, its extra logs from a YAML file (`--additional_logs`: Origin, PublicKey),
  and keeps its state in SQLite (`--db_file`). It also loads its built-in list of public logs,
  but contacts none of them: it fetches nothing unless given a distributor or a public witness
  network URL, and neither is given here. Its metrics listener is turned off.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from deploy.local.processes import free_port, port_open
from services.transparency import note
from tests.support.gomodules import download_pinned

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "witnesses"
LITEWITNESS_MODULE, LITEWITNESS_VERSION = "filippo.io/torchwood", "v0.6.1"
# transparency-dev/witness tags no release: the newest commit's pseudo-version (Go 1.25 module).
OMNIWITNESS_MODULE, OMNIWITNESS_VERSION = (
    "github.com/transparency-dev/witness",
    "v0.0.0-20260720115447-2e1c6971d19e",
)
# The modules fetched by version (tests/unit/test_pinned_downloads.py checks they are pinned).
WITNESS_MODULES = (
    f"{LITEWITNESS_MODULE}@{LITEWITNESS_VERSION}",
    f"{OMNIWITNESS_MODULE}@{OMNIWITNESS_VERSION}",
)
_PROGRAMS = {
    "litewitness": (LITEWITNESS_MODULE, LITEWITNESS_VERSION, "cmd/litewitness"),
    "witnessctl": (LITEWITNESS_MODULE, LITEWITNESS_VERSION, "cmd/witnessctl"),
    "omniwitness": (OMNIWITNESS_MODULE, OMNIWITNESS_VERSION, "cmd/omniwitness"),
}


def build_witnesses() -> dict[str, Path]:
    """litewitness, witnessctl and omniwitness, built once per pinned version and reused."""
    binaries = {name: CACHE / f"{name}-{version}" for name, (_, version, _) in _PROGRAMS.items()}
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / ".lock").open("w") as guard:  # two runs at once build them once
        fcntl.flock(guard, fcntl.LOCK_EX)
        missing = [name for name, path in binaries.items() if not path.exists()]
        if missing:
            go = shutil.which("go")
            assert go is not None, "the Go toolchain (`go`) is needed to build the standard witnesses"
            build = CACHE / "build"
            build.mkdir(exist_ok=True)
            env = {**os.environ, "GOBIN": str(build), "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"}
            for module in WITNESS_MODULES:  # each checked against its committed hash first
                download_pinned(go, module, cwd=build, env=env)
            for name in missing:
                module, version, package = _PROGRAMS[name]
                done = subprocess.run(
                    [go, "install", f"{module}/{package}@{version}"],
                    cwd=build,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=1800,
                    check=False,
                )
                assert done.returncode == 0, f"building {name} failed:\n{done.stderr[-4000:]}"
                (build / name).replace(binaries[name])
            shutil.rmtree(build, ignore_errors=True)
    return binaries


@dataclass
class Witness:
    """One witness program: its name, key, state folder and port, and its process while it runs."""

    kind: str  # "litewitness" or "omniwitness"
    name: str
    folder: Path
    binaries: dict[str, Path]
    agent_socket: Path
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def public_key(self) -> bytes:
        return self.key.public_key().public_bytes_raw()

    @property
    def vkey(self) -> str:
        """Its cosignature verifier key (type 0x04), as a policy's `witness` line names it."""
        return self.verifier.key()

    @property
    def verifier(self) -> note.CosignatureVerifier:
        return note.CosignatureVerifier(self.name, self.public_key)

    @property
    def url(self) -> str:
        """Its submission prefix: the registry POSTs `<url>/add-checkpoint`."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def output(self) -> Path:
        return self.folder / f"{self.kind}.log"

    def configure(self, origin: str, log_vkey: str) -> None:
        """Tells the witness the log it witnesses (before its first start)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if self.kind == "litewitness":
            db = str(self.folder / "litewitness.db")
            for args in (["add-log", "-origin", origin], ["add-key", "-origin", origin, "-key", log_vkey]):
                done = subprocess.run(
                    [str(self.binaries["witnessctl"]), args[0], "-db", db, *args[1:]],
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=False,
                )
                assert done.returncode == 0, f"witnessctl {args[0]}: {done.stderr}"
            key_file = self.folder / "witness-key"
            key_file.write_bytes(
                self.key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.OpenSSH,
                    serialization.NoEncryption(),
                )
            )
            key_file.chmod(0o600)
            env = {**os.environ, "SSH_AUTH_SOCK": str(self.agent_socket)}
            done = subprocess.run(
                ["ssh-add", "-q", str(key_file)],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert done.returncode == 0, f"ssh-add: {done.stderr}"
            key_file.unlink()  # the agent holds it now
        else:
            # As `coordreg-audit witness-key` writes it (type 0x04), which docs/OPERATIONS.md
            # tells an agency running omniwitness to use.
            (self.folder / "witness-key").write_text(
                note.signer_key(self.name, self.key, note.ALG_COSIGNATURE_V1)
            )
            (self.folder / "witness-key").chmod(0o600)
            (self.folder / "logs.yaml").write_text(
                f'Logs:\n  - Origin: "{origin}"\n    PublicKey: "{log_vkey}"\n', encoding="utf-8"
            )

    def _command(self) -> list[str]:
        listen = f"127.0.0.1:{self.port}"
        if self.kind == "litewitness":
            return [
                str(self.binaries["litewitness"]),
                f"-name={self.name}",
                f"-db={self.folder / 'litewitness.db'}",
                f"-ssh-agent={self.agent_socket}",
                f"-key={hashlib.sha256(self.public_key).hexdigest()}",
                f"-listen={listen}",
            ]
        return [
            str(self.binaries["omniwitness"]),
            f"--listen={listen}",
            "--metrics_listen=",
            f"--db_file={self.folder / 'omniwitness.db'}",
            f"--private_key_path={self.folder / 'witness-key'}",
            f"--additional_logs={self.folder / 'logs.yaml'}",
            "--logtostderr",
        ]

    def start(self, timeout: float = 30) -> None:
        assert self.process is None, f"{self.name} is already running"
        with self.output.open("ab") as out:
            self.process = subprocess.Popen(
                self._command(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while not port_open(self.port):
            if self.process.poll() is not None:
                self.process = None
                raise AssertionError(f"{self.kind} {self.name} exited:\n{self.output.read_text()[-3000:]}")
            assert time.monotonic() < deadline, f"{self.kind} {self.name} did not listen within {timeout}s"
            time.sleep(0.05)

    def stop(self) -> None:
        """Interrupts it (both shut down on SIGINT, their state saved) and waits for it."""
        if self.process is None:
            return
        process, self.process = self.process, None
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def add_checkpoint(self, body: bytes, timeout: float = 10) -> httpx.Response:
        """One `POST <url>/add-checkpoint` with `body`, as the protocol sends it."""
        return httpx.post(f"{self.url}/add-checkpoint", content=body, timeout=timeout)


@contextlib.contextmanager
def running_witnesses(
    kinds: list[str], origin: str, log_vkey: str, folder: Path | None = None
) -> Iterator[list[Witness]]:
    """Witnesses of the given kinds, named `witness-<i>.coordreg.test`, each configured for the
    log (origin, verifier key) and started; all stopped afterwards."""
    binaries = build_witnesses()
    # A short folder: the ssh-agent socket's path must fit a sockaddr_un (108 bytes).
    short = Path(tempfile.mkdtemp(prefix="wit-", dir="/tmp"))
    base = folder or short
    socket_path = short / "agent"
    agent: subprocess.Popen[bytes] | None = None
    witnesses: list[Witness] = []
    try:
        if "litewitness" in kinds:
            agent = subprocess.Popen(
                ["ssh-agent", "-D", "-a", str(socket_path)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            deadline = time.monotonic() + 10
            while not socket_path.exists():
                assert agent.poll() is None and time.monotonic() < deadline, "ssh-agent did not start"
                time.sleep(0.02)
        for i, kind in enumerate(kinds):
            witness = Witness(
                kind, f"witness-{i}.coordreg.test", base / f"w{i}-{kind}", binaries, socket_path
            )
            witness.configure(origin, log_vkey)
            witnesses.append(witness)
        for witness in witnesses:
            witness.start()
        yield witnesses
    finally:
        for witness in witnesses:
            witness.stop()
        if agent is not None:
            agent.terminate()
            agent.wait(timeout=10)
        shutil.rmtree(short, ignore_errors=True)
