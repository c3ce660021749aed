"""Standard C2SP tlog-witness programs on loopback: `litewitness` (with its `witnessctl`) from
filippo.io/torchwood, and `omniwitness` from github.com/transparency-dev/witness. `make run`
runs two litewitness and one omniwitness beside the stack (LocalWitnesses); the tests run them
too (tests/support/witnesses.py).

Both are built once per version from the Go module proxy into `.cache/witnesses/`, each module
checked first against deploy/local/go-modules.sum (its own go.sum pins the rest). A missing `go`
or a failed build is a WitnessError.

Each witness has its own folder: its Ed25519 key (`witness-key`, made on first use and kept,
in the note signer key form of type 0x04), its state (SQLite) and the log it witnesses (the
log's origin and its verifier key, Go note format, type 0x01), told once. It then answers
`POST <url>/add-checkpoint` with timestamped cosignature/v1 lines (type 0x04), which its `vkey`
verifies. Stopping one keeps its state; starting it again, in this run or the next, resumes
from it.

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
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from deploy.local.gomodules import ModuleRefused, install_pinned
from deploy.local.processes import die_with_parent, port_open
from services.transparency import note

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "witnesses"
HOST = "127.0.0.1"
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
KINDS = ("litewitness", "omniwitness")


class WitnessError(Exception):
    """A witness that cannot be built, configured or started (the message says why)."""


def _binaries(cache: Path) -> dict[str, Path]:
    return {name: cache / f"{name}-{version}" for name, (_, version, _) in _PROGRAMS.items()}


def built(cache: Path = CACHE) -> bool:
    """Whether every program is built already (build_witnesses then only finds them)."""
    return all(path.exists() for path in _binaries(cache).values())


def build_witnesses(cache: Path = CACHE) -> dict[str, Path]:
    """litewitness, witnessctl and omniwitness, built once per pinned version and reused."""
    binaries = _binaries(cache)
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as guard:  # two runs at once build them once
        fcntl.flock(guard, fcntl.LOCK_EX)
        missing = [name for name, path in binaries.items() if not path.exists()]
        if missing:
            go = shutil.which("go")
            if go is None:
                raise WitnessError(
                    "the Go toolchain (`go`) is needed to build the standard witnesses "
                    "(litewitness, omniwitness): install Go 1.25 or newer"
                )
            build = cache / "build"
            build.mkdir(exist_ok=True)
            for name in missing:
                module, version, package = _PROGRAMS[name]
                try:
                    installed = install_pinned(go, module, version, package, gobin=build)
                except ModuleRefused as exc:
                    raise WitnessError(f"building {name}: {exc}") from None
                installed.replace(binaries[name])
            shutil.rmtree(build, ignore_errors=True)
    return binaries


def _run(
    command: list[str], what: str, *, stdin: str | None = None, env: dict[str, str] | None = None
) -> None:
    done = subprocess.run(
        command, input=stdin, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise WitnessError(f"{what}: {done.stderr.strip() or done.stdout.strip()}")


class SshAgent:
    """An ssh-agent of our own, through which litewitness signs; its socket in a short folder
    under /tmp (a socket's path must fit a sockaddr_un, 108 bytes)."""

    def __init__(self, *, tie_to_parent: bool = False) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="wit-", dir="/tmp"))
        self.socket = self.folder / "agent"
        self.process = subprocess.Popen(
            ["ssh-agent", "-D", "-a", str(self.socket)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent if tie_to_parent else None,
        )
        deadline = time.monotonic() + 10
        while not self.socket.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise WitnessError("ssh-agent did not start")
            time.sleep(0.02)

    def add(self, key: Ed25519PrivateKey) -> None:
        """Gives the agent a key (from standard input: it is never written out in this form)."""
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
        _run(
            ["ssh-add", "-q", "-"],
            "ssh-add",
            stdin=pem.decode(),
            env={**os.environ, "SSH_AUTH_SOCK": str(self.socket)},
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        shutil.rmtree(self.folder, ignore_errors=True)


def _load_or_make_key(path: Path, name: str) -> Ed25519PrivateKey:
    """The witness's key from its folder, or a new one written there (mode 0600)."""
    if path.exists():
        signer = note.parse_signer_key(path.read_text(encoding="utf-8"))
        if not isinstance(signer, note.Cosigner) or signer.name != name:
            raise WitnessError(f"{path} is not a cosignature/v1 key named {name}")
        return signer.private_key
    key = Ed25519PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    # As `coordreg-audit witness-key` writes it (type 0x04), which docs/OPERATIONS.md tells an
    # agency running omniwitness to use; omniwitness reads this very file.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(note.signer_key(name, key, note.ALG_COSIGNATURE_V1))
    return key


@dataclass
class Witness:
    """One witness program: its name, key, state folder and port, and its process while it runs."""

    kind: str  # "litewitness" or "omniwitness"
    name: str  # its key name: the name on its cosignature lines
    folder: Path
    binaries: dict[str, Path]
    agent: SshAgent | None  # litewitness signs through it
    port: int
    # Its output; by default in its folder.
    log: Path | None = None
    key: Ed25519PrivateKey = field(init=False)
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise WitnessError(f"a witness is one of {KINDS}, not {self.kind!r}")
        if self.kind == "litewitness" and self.agent is None:
            raise WitnessError("litewitness signs through an ssh-agent: give it one")
        self.key = _load_or_make_key(self.folder / "witness-key", self.name)

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
        return f"http://{HOST}:{self.port}"

    @property
    def output(self) -> Path:
        return self.log or self.folder / f"{self.kind}.log"

    def configure(self, origin: str, log_vkey: str) -> None:
        """Tells the witness the log it witnesses, once: a folder told already is left as it is,
        and one told of another log is refused."""
        told = self.folder / "log"
        wanted = f"{origin}\n{log_vkey}\n"
        if told.exists():
            if told.read_text(encoding="utf-8") != wanted:
                raise WitnessError(f"{self.folder} witnesses another log ({told}); remove the folder")
            return
        if self.kind == "litewitness":
            db = str(self.folder / "litewitness.db")
            witnessctl = str(self.binaries["witnessctl"])
            _run([witnessctl, "add-log", "-db", db, "-origin", origin], "witnessctl add-log")
            _run(
                [witnessctl, "add-key", "-db", db, "-origin", origin, "-key", log_vkey], "witnessctl add-key"
            )
        else:
            (self.folder / "logs.yaml").write_text(
                f'Logs:\n  - Origin: "{origin}"\n    PublicKey: "{log_vkey}"\n', encoding="utf-8"
            )
        told.write_text(wanted, encoding="utf-8")

    def _command(self) -> list[str]:
        listen = f"{HOST}:{self.port}"
        if self.kind == "litewitness":
            assert self.agent is not None  # __post_init__
            return [
                str(self.binaries["litewitness"]),
                f"-name={self.name}",
                f"-db={self.folder / 'litewitness.db'}",
                f"-ssh-agent={self.agent.socket}",
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

    def start(self, timeout: float = 30, *, tie_to_parent: bool = False) -> None:
        """Starts it (configured first) and waits until it listens. `tie_to_parent`: it gets
        SIGTERM when the thread that started it dies (`make run`, killed, leaves none behind)."""
        if self.process is not None:
            raise WitnessError(f"{self.name} is already running")
        if not (self.folder / "log").exists():
            raise WitnessError(f"{self.name} has not been told its log: configure it first")
        if self.agent is not None and self.kind == "litewitness":
            self.agent.add(self.key)  # again after a restart: the agent may be a new one
        with self.output.open("ab") as out:
            self.process = subprocess.Popen(
                self._command(),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent if tie_to_parent else None,
            )
        deadline = time.monotonic() + timeout
        while not port_open(self.port):
            if self.process.poll() is not None:
                self.process = None
                raise WitnessError(f"{self.kind} {self.name} exited:\n{self.output.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise WitnessError(f"{self.kind} {self.name} did not listen on {self.port} within {timeout}s")
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


def policy_text(log_vkey: str, witnesses: Mapping[str, Witness], threshold: int, group: str = "w") -> str:
    """A C2SP tlog-policy naming the log, each witness (its name in the policy, its key and its
    URL) and a quorum of `threshold` of them."""
    lines = [f"log {log_vkey}"]
    lines += [f"witness {name} {witness.vkey} {witness.url}" for name, witness in witnesses.items()]
    lines += [f"group {group} {threshold} {' '.join(witnesses)}", f"quorum {group}"]
    return "\n".join(lines) + "\n"


# --- `make run`'s witnesses ------------------------------------------------------------------

# Their names in the policy, and what runs each.
STACK_WITNESSES = {
    "litewitness-1": "litewitness",
    "litewitness-2": "litewitness",
    "omniwitness": "omniwitness",
}
STACK_QUORUM = 2


async def database_identity(database_url: str) -> str:
    """Which database holds the log: the server's system identifier (new at every initdb) and the
    database's oid (new when it is dropped and made again)."""
    connection = await asyncpg.connect(database_url)
    try:
        system = await connection.fetchval("SELECT system_identifier FROM pg_control_system()")
        oid = await connection.fetchval("SELECT oid FROM pg_database WHERE datname = current_database()")
    finally:
        await connection.close()
    return f"{system}/{oid}"


class LocalWitnesses:
    """`make run`'s witnesses (STACK_WITNESSES) and their 2-of-3 policy, under `folder`.

    Their keys and state are kept there from one run to the next, for the log they were first
    told of: the database that holds it (database_identity) and the log's key. A witness only
    moves forward (a smaller or different tree is refused with 409 or 422), so when the
    database is new (`.local/postgres` deleted, another DATABASE_URL) or the log key changed,
    the folder is emptied and the witnesses start afresh, new keys and all: their old
    cosignatures were of a log that is gone.

    A witness made afresh is a new witness, and gets a new key name (its policy name and a
    random suffix): the registry knows what a witness cosigned by its key name, so a new one
    under an old name would be taken for one that had cosigned the log already (as after
    `.local/witnesses` alone is deleted), and fed from a size it never saw.
    """

    def __init__(self, folder: Path, ports: Mapping[str, int], logs: Path, cache: Path = CACHE) -> None:
        self.folder = folder
        self.ports = dict(ports)
        self.logs = logs
        self.cache = cache
        self.policy_file = folder / "policy"
        self.agent: SshAgent | None = None
        self.witnesses: dict[str, Witness] = {}

    def prepare(self, identity: str, origin: str, log_vkey: str) -> bool:
        """Builds the programs and readies each witness's folder; whether it was emptied first."""
        binaries = build_witnesses(self.cache)
        stamp = self.folder / "identity"
        wanted = f"{identity}\n{origin}\n{log_vkey}\n"
        reset = self.folder.exists() and (not stamp.exists() or stamp.read_text(encoding="utf-8") != wanted)
        if reset:
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        stamp.write_text(wanted, encoding="utf-8")
        self.agent = SshAgent(tie_to_parent=True)
        for name, kind in STACK_WITNESSES.items():
            key_file = self.folder / name / "witness-key"
            if key_file.exists():
                key_name = note.parse_signer_key(key_file.read_text(encoding="utf-8")).name
            else:
                key_name = f"{name}-{secrets.token_hex(3)}.witness.coordreg.invalid"
            witness = Witness(
                kind,
                key_name,
                self.folder / name,
                binaries,
                self.agent,
                self.ports[name],
                log=self.logs / f"witness-{name}.log",
            )
            witness.configure(origin, log_vkey)
            self.witnesses[name] = witness
        self.policy_file.write_text(policy_text(log_vkey, self.witnesses, STACK_QUORUM), encoding="utf-8")
        return reset

    def start(self) -> None:
        for witness in self.witnesses.values():
            witness.start(tie_to_parent=True)

    def stop(self) -> None:
        for witness in self.witnesses.values():
            witness.stop()
        if self.agent is not None:
            self.agent.stop()
            self.agent = None
