"""Flame graphs of the services under the bench's HTTP load, with py-spy (sampling, so the
services run at full speed while they are recorded).

    .venv/bin/python -m bench.flame --tag before        # bench/results/flame-<service>-before.svg

It runs `python -m bench.run --quick --skip-peer --skip-replay` into a scratch directory and,
when the closed-loop phase starts (every client flat out: the profile of the saturated
system), records each service process for `--seconds`. The figures of that run are not the
bench's: they are only the load the profile is taken under.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.stack import ROOT, SERVICES, say

RESULTS = ROOT / "bench" / "results"
_PHASE_MARK = "▶ closed loop"


def py_spy() -> str:
    found = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if found is None:
        raise SystemExit("py-spy is not installed: run `make venv` (it is in requirements.lock)")
    return found


def service_pids() -> dict[str, int]:
    """The bench's service processes, by name (their command line names the module)."""
    found: dict[str, int] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        for name, module in SERVICES.items():
            if module.encode() in args:
                found[name] = int(proc.name)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tag", required=True, help="names the SVGs: flame-<service>-<tag>.svg")
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    args = parser.parse_args()
    spy = py_spy()
    scratch = Path(tempfile.mkdtemp(prefix="coordreg-flame-"))
    bench = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.run",
            "--quick",
            "--skip-peer",
            "--skip-replay",
            "--duration",
            str(args.seconds + 5),
            "--out",
            str(scratch),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert bench.stdout is not None
    recorders: list[subprocess.Popen[bytes]] = []
    for line in bench.stdout:
        print(line, end="", flush=True)
        if _PHASE_MARK in line and not recorders:
            time.sleep(1.0)  # past the phase's first connections
            for name, pid in sorted(service_pids().items()):
                out = RESULTS / f"flame-{name}-{args.tag}.svg"
                say(f"py-spy: recording {name} (pid {pid}) for {args.seconds}s -> {out.relative_to(ROOT)}")
                recorders.append(
                    subprocess.Popen(
                        [
                            spy,
                            "record",
                            "--pid",
                            str(pid),
                            "--duration",
                            str(args.seconds),
                            "--rate",
                            str(args.rate),
                            "--format",
                            "flamegraph",
                            "--output",
                            str(out),
                            "--nonblocking",
                            # The registry's worker processes are its children.
                            "--subprocesses",
                        ],
                        stdout=subprocess.DEVNULL,
                    )
                )
    for recorder in recorders:
        recorder.wait()
    bench.wait()
    shutil.rmtree(scratch, ignore_errors=True)
    if not recorders:
        raise SystemExit("the bench ended before its closed-loop phase: nothing recorded")


if __name__ == "__main__":
    main()
