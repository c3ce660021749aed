"""Where the CPU goes: cProfile output boiled down to a few readable lines."""

from __future__ import annotations

import cProfile
import pstats
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _where(filename: str, line: int, function: str) -> str:
    if filename.startswith("~") or filename.startswith("<"):
        return function
    path = filename
    for marker in ("site-packages/", str(ROOT) + "/", "lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{function} ({path}:{line})"


def top_functions(stats: pstats.Stats, count: int = 20) -> list[str]:
    """The `count` functions with the most own time: own s, cumulative s, calls, where."""
    table = stats.stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in table.values()) or 1.0
    rows = sorted(table.items(), key=lambda item: -item[1][2])[:count]
    lines = [
        f"{'own s':>8} {'own %':>6} {'cum s':>8} {'calls':>9}  function",
    ]
    for (filename, line, function), (_, calls, own, cumulative, _) in rows:
        lines.append(
            f"{own:8.3f} {100 * own / total:5.1f}% {cumulative:8.3f} {calls:9d}  {_where(filename, line, function)}"
        )
    return lines


def from_profile(profile: cProfile.Profile, count: int = 20) -> list[str]:
    return top_functions(pstats.Stats(profile), count)


def from_file(path: Path, count: int = 20) -> list[str]:
    if not path.exists():
        return [f"(no profile at {path})"]
    return top_functions(pstats.Stats(str(path)), count)
