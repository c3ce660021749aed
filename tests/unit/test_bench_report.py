"""bench/report.py: issue 21's table of the command path, from a run's measurements."""

from __future__ import annotations

from typing import Any

from bench.report import COMMAND_PATH, ISSUE_12, command_path_verdicts, targets_markdown, verdicts


def _phase(
    mode: str, rate: float, sustained: float, registry_ms: float, postgres_ms: float
) -> dict[str, Any]:
    return {
        "name": f"{mode} {rate:g}/s" if mode == "open" else "closed max",
        "mode": mode,
        "target_rate": rate,
        "sustained": sustained,
        "ok": 10_000,
        "errors": {},
        "not_sent": 0,
        "latency": {"p50": 8.0, "p99": 42.0, "max": 60.0},
        "service": {"p50": 7.0, "p99": 40.0},
        "lag_http": {"p50": 30.0, "p99": 120.0, "count": 50},
        "lag_db": {"p50": 20.0, "p99": 90.0, "count": 50},
        "lag_missing": 0,
        "cpu": {"registry": 60.0, "postgres": 30.0, "machine": 80.0},
        "cpu_ms_per_command": {"registry": registry_ms, "postgres": postgres_ms},
    }


def results() -> dict[str, Any]:
    return {
        "started_at": "2026-12-07T05:00:00+00:00",
        "mode": "full",
        "environment": {
            **dict.fromkeys(
                ("python", "postgresql", "kafka", "asyncpg", "aiokafka", "httpx", "git_commit"), "x"
            ),
            "cpu_count": 2,
            "clients": 64,
        },
        "load": {
            "phases": [_phase("open", 500.0, 499.0, 1.1, 0.6), _phase("closed", 0.0, 700.0, 0.75, 0.45)]
        },
        "append": {"ours": {"per_second": 1000.0}},
        "ceilings": {
            "ratios": [
                {"figure": "HTTP commands/s (best clean phase)", "ceiling": "raw asyncpg", "ratio": 0.14},
            ]
        },
    }


def test_each_figure_of_issue_21_is_read_from_its_phase_and_judged_against_its_target() -> None:
    rows = {row["target"]: row for row in command_path_verdicts(results())}
    registry = rows["registry CPU per command over HTTP, closed loop"]
    assert registry["measured"].startswith("0.75 ms") and registry["met"] is True
    postgres = rows["PostgreSQL CPU per command (closed loop)"]
    assert postgres["measured"].startswith("0.45 ms") and postgres["met"] is True
    inprocess = rows["HTTP commands/s ÷ in-process appends/s, same run"]
    assert inprocess["measured"].startswith("0.70") and inprocess["met"] is True
    asyncpg = rows["HTTP commands/s ÷ raw asyncpg ceiling, same run"]
    assert asyncpg["measured"].startswith("0.14") and asyncpg["met"] is False
    assert rows["p99 at 500 commands/s, open loop"]["met"] is True
    assert rows["projection lag p99 at 500 commands/s"]["met"] is False
    assert {row["table"] for row in rows.values()} == {COMMAND_PATH}


def test_the_report_shows_both_tables_and_names_the_profiles_it_cites() -> None:
    rows = verdicts(results())
    assert {row.get("table") for row in rows} == {COMMAND_PATH, ISSUE_12}
    text = "\n".join(targets_markdown(rows))
    assert text.index("Issue 21's targets") < text.index("Issue 12's targets")
    for service in ("registry", "projections", "relay"):
        for tag in ("before", "after"):
            assert f"flame-{service}-i21-{tag}.svg" in text
