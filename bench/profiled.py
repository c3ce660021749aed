"""`python -m bench.profiled OUT.prof MODULE`: runs MODULE's `main()` under cProfile, counting
CPU time (not wall time: an async service mostly waits, and waiting is not what limits it),
and writes the profile when the process is stopped with SIGTERM or SIGINT."""

from __future__ import annotations

import cProfile
import importlib
import signal
import sys
import time
from typing import NoReturn


def _exit(*_: object) -> NoReturn:
    # uvicorn restores the handler it found and re-raises the signal after its shutdown:
    # exiting through SystemExit lets the profile below be written.
    raise SystemExit(0)


def main() -> None:
    out, module = sys.argv[1], sys.argv[2]
    signal.signal(signal.SIGTERM, _exit)
    signal.signal(signal.SIGINT, _exit)
    target = importlib.import_module(module)
    profile = cProfile.Profile(time.process_time)
    profile.enable()
    try:
        # The service's own command line: its name only (the services take no arguments).
        target.main([])
    finally:
        profile.disable()
        profile.dump_stats(out)


if __name__ == "__main__":
    main()
