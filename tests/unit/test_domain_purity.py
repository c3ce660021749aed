"""The domain is pure: importing it loads no database, broker or web framework."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DOMAIN = Path(__file__).resolve().parents[2] / "services" / "registry" / "domain"
FORBIDDEN = ("asyncpg", "aiokafka", "fastapi", "starlette", "uvicorn", "httpx")


def test_domain_modules_import_no_io_library() -> None:
    modules = [f"services.registry.domain.{p.stem}" for p in DOMAIN.glob("*.py") if p.stem != "__init__"]
    assert "services.registry.domain.decide" in modules
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"loaded = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "", f"domain pulls in I/O libraries: {result.stdout}"
