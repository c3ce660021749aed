"""What `bench/results/` keeps: the latest reports and the files they cite, not every run.

The reports are `latest.md` (`make bench`) and `cluster.md` (`make bench CLUSTER=1`). A run
replaces its report, then `prune` deletes every other report, picture or profile in the
directory that no report names: an older run's profile, a one-off report. A profile made by
`python -m bench.flame --tag …` stays only while `bench/report.py` cites it by file name.

The measurements behind the reports (`latest.json`, `cluster.json`) stay beside them, for
`--render` and for the cluster report's comparison with one node, but are not committed
(`bench/results/.gitignore`): git keeps what a reader reads, not the samples of every run.
"""

from __future__ import annotations

import re
from pathlib import Path

REPORTS = ("latest.md", "cluster.md")
# The kinds of file the bench writes for a reader; prune never touches anything else (the
# measurements, .gitignore).
PUBLISHED = frozenset({".md", ".png", ".svg"})
# A file name in a report's text: `flame-relay-after.svg`, [latest.md](latest.md), latency.png.
_NAME = re.compile(r"(?<![A-Za-z0-9_.-])[A-Za-z0-9][A-Za-z0-9._-]*\.(?:md|png|svg)(?!\.?[A-Za-z0-9_-])")


def cited(text: str) -> set[str]:
    """The file names (of the kinds the bench publishes) that a report's text mentions."""
    return set(_NAME.findall(text))


def kept(out: Path) -> set[str]:
    """The reports present in `out` and every file they cite."""
    names: set[str] = set()
    for report in REPORTS:
        path = out / report
        if path.is_file():
            names.add(report)
            names |= cited(path.read_text(encoding="utf-8"))
    return names


def uncited(out: Path) -> list[Path]:
    """The published files in `out` that no report there cites, in name order."""
    keep = kept(out)
    return sorted(
        path
        for path in out.iterdir()
        if path.is_file() and path.suffix in PUBLISHED and path.name not in keep
    )


def prune(out: Path) -> list[Path]:
    """Deletes what `uncited` finds and returns it: after a run, `out` holds its reports, what
    they cite, and the measurements."""
    gone = uncited(out)
    for path in gone:
        path.unlink()
    return gone
