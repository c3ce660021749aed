"""Runs the installed audit command, `coordreg-audit`, as an auditor would."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

# The console command pip installed beside this interpreter (the project's virtualenv).
AUDIT_COMMAND = Path(sys.executable).with_name("coordreg-audit")


async def run_audit(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """Exit code, stdout and stderr of `coordreg-audit ARGS` with `env` added to the environment."""
    process = await asyncio.create_subprocess_exec(
        str(AUDIT_COMMAND),
        *args,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    return await process.wait(), out.decode(), err.decode()
