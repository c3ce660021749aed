"""The figures table that the fault suites (tests/faults, tests/cluster) print at their end and
keep under .local/<suite>/latest.md and latest.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


class Figures:
    def __init__(self, suite: str) -> None:
        self.suite = suite
        self.rows: list[dict[str, Any]] = []

    def record(self, scenario: str, figure: str, value: object, expected: str = "") -> None:
        self.rows.append({"scenario": scenario, "figure": figure, "value": value, "expected": expected})
        print(f"  [{scenario}] {figure}: {value} {expected}")

    def write(self, terminalreporter: Any) -> None:
        if not self.rows:
            return
        lines = ["| scenario | figure | value | expected |", "|---|---|---|---|"]
        lines += [f"| {r['scenario']} | {r['figure']} | {r['value']} | {r['expected']} |" for r in self.rows]
        table = "\n".join(lines)
        terminalreporter.write_sep("=", f"{self.suite} suite figures")
        terminalreporter.write_line(table)
        out = ROOT / ".local" / self.suite
        out.mkdir(parents=True, exist_ok=True)
        (out / "latest.md").write_text(table + "\n", encoding="utf-8")
        (out / "latest.json").write_text(
            json.dumps(self.rows, indent=2, default=str) + "\n", encoding="utf-8"
        )
