"""Standard C2SP tlog-witness programs on loopback for the tests: `litewitness` and `omniwitness`,
as deploy/local/witnesses.py builds and runs them (from the Go module proxy, checked against
deploy/local/go-modules.sum, into `.cache/witnesses/`). A missing `go` or a failed build is a
failure (a WitnessError), never a skip.

Each witness gets a fresh Ed25519 key, its own state folder and a free port on 127.0.0.1, and is
told the one log it witnesses. Stopping one keeps its state; starting it again resumes from it.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from deploy.local.processes import free_ports
from deploy.local.witnesses import SshAgent, Witness, build_witnesses


@contextlib.contextmanager
def running_witnesses(
    kinds: list[str], origin: str, log_vkey: str, folder: Path | None = None
) -> Iterator[list[Witness]]:
    """Witnesses of the given kinds, named `witness-<i>.coordreg.test`, each configured for the
    log (origin, verifier key) and started; all stopped afterwards."""
    binaries = build_witnesses()
    temporary = None if folder else Path(tempfile.mkdtemp(prefix="witnesses-"))
    base = folder or temporary
    assert base is not None
    agent = SshAgent() if "litewitness" in kinds else None
    witnesses: list[Witness] = []
    try:
        for i, (kind, port) in enumerate(zip(kinds, free_ports(len(kinds)), strict=True)):
            witness = Witness(
                kind, f"witness-{i}.coordreg.test", base / f"w{i}-{kind}", binaries, agent, port
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
            agent.stop()
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
