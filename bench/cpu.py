"""CPU time per process, read from /proc, so each phase can say which process used the cores.

A group is one process and, for PostgreSQL, its whole tree: the postmaster's own time,
the time of its live backends, and (cutime/cstime) the time of backends that already
exited. Figures are "% of one core": 200 % is the whole of a 2-core machine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

TICK = float(os.sysconf("SC_CLK_TCK"))


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name is in parentheses and may contain spaces: split after it.
    return text[text.rindex(")") + 2 :].split()


def process_seconds(pid: int, *, dead_children: bool = False) -> float:
    """utime + stime of `pid` (plus its waited-for children's with `dead_children`)."""
    fields = _stat(pid)
    if fields is None:
        return 0.0
    # After the name: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
    ticks = int(fields[11]) + int(fields[12])
    if dead_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / TICK


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat(int(entry.name))
        if fields is not None and int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def tree_seconds(pid: int) -> float:
    return process_seconds(pid, dead_children=True) + sum(process_seconds(c) for c in children_of(pid))


def machine_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, all cores together."""
    line = Path("/proc/stat").read_text().splitlines()[0].split()
    values = [int(v) for v in line[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    # guest time is already counted in user/nice.
    total = sum(values[:8])
    return (total - idle) / TICK, total / TICK


@dataclass
class Snapshot:
    at: float
    groups: dict[str, float]
    busy: float
    total: float


@dataclass
class CpuMeter:
    """Named process groups: `trees` include children (PostgreSQL), `single` do not;
    `extra` adds more processes to a group (the Go load generator to `bench client`)."""

    single: dict[str, int] = field(default_factory=dict)
    trees: dict[str, int] = field(default_factory=dict)
    extra: dict[str, list[int]] = field(default_factory=dict)

    def snapshot(self, now: float) -> Snapshot:
        groups = {name: process_seconds(pid) for name, pid in self.single.items()}
        groups.update({name: tree_seconds(pid) for name, pid in self.trees.items()})
        for name, pids in self.extra.items():
            groups[name] = groups.get(name, 0.0) + sum(process_seconds(pid) for pid in pids)
        busy, total = machine_seconds()
        return Snapshot(now, groups, busy, total)


def usage(before: Snapshot, after: Snapshot) -> dict[str, float]:
    """% of one core per group between two snapshots, plus `machine` (all cores, busy %
    of the machine's capacity) and `others` (what no group of ours accounts for: other
    programs on the machine, in % of one core)."""
    wall = after.at - before.at
    if wall <= 0:
        return {}
    cores = os.cpu_count() or 1
    result = {
        name: round(100 * max(0.0, after.groups.get(name, 0.0) - before.groups.get(name, 0.0)) / wall, 1)
        for name in after.groups
    }
    busy = after.busy - before.busy
    span = after.total - before.total
    result["machine"] = round(100 * busy / span, 1) if span > 0 else 0.0
    ours = sum(v for k, v in result.items() if k != "machine")
    result["others"] = round(max(0.0, 100 * busy / wall - ours), 1)
    result["cores"] = float(cores)
    return result


def per_unit_ms(cpu: dict[str, float], seconds: float, units: int) -> dict[str, float]:
    """CPU milliseconds each process group spent per unit of work (command, event) in a phase:
    1000 / that is how many units one core of that process could do per second."""
    if units <= 0:
        return {}
    return {
        name: round(percent / 100 * seconds * 1000 / units, 3)
        for name, percent in cpu.items()
        if name not in ("machine", "cores", "others") and percent > 0
    }
