"""bench/results/ keeps the latest reports and the files they cite, not every run (bench/publish.py)."""

from __future__ import annotations

from pathlib import Path

from bench import publish

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"


def test_what_is_in_bench_results_is_a_report_or_cited_by_one() -> None:
    assert (RESULTS / "latest.md").is_file()
    assert publish.uncited(RESULTS) == []


def test_every_file_a_report_cites_is_there() -> None:
    missing = sorted(name for name in publish.kept(RESULTS) if not (RESULTS / name).is_file())
    assert missing == []


def test_the_measurements_are_not_committed() -> None:
    ignore = (RESULTS / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert "*.json" in ignore


def test_a_run_replaces_its_report_and_removes_what_no_report_cites(tmp_path: Path) -> None:
    (tmp_path / "latest.md").write_text(
        "# run 2\n\nProfiles: `flame-registry-after.svg`, and [the cluster](cluster.md).\n"
        "Latency over time: `latency.png` beside this file.\n",
        encoding="utf-8",
    )
    (tmp_path / "cluster.md").write_text("Single node ([latest.md](latest.md)).\n", encoding="utf-8")
    for name in (
        "latency.png",
        "flame-registry-after.svg",
        "flame-registry-before.svg",
        "http-after-asgi-middleware.md",
        "latest.json",
        "cluster.json",
        ".gitignore",
        "notes.txt",
    ):
        (tmp_path / name).write_bytes(b"x")

    gone = publish.prune(tmp_path)

    assert [p.name for p in gone] == ["flame-registry-before.svg", "http-after-asgi-middleware.md"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".gitignore",
        "cluster.json",
        "cluster.md",
        "flame-registry-after.svg",
        "latency.png",
        "latest.json",
        "latest.md",
        "notes.txt",
    ]
    assert publish.prune(tmp_path) == []


def test_a_name_counts_only_whole() -> None:
    text = (
        "`flame-relay-after.svg`, bench/results/flame-rebuild-after.svg, [latest.md](latest.md); "
        "not `-before`, not bench/log_proofs.py, not latency.pngs, not x.svg.bak; see cluster.md."
    )
    assert publish.cited(text) == {
        "flame-relay-after.svg",
        "flame-rebuild-after.svg",
        "latest.md",
        "cluster.md",
    }
