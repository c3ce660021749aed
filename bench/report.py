"""Verdicts for the issue's targets, and the markdown table of a run."""

from __future__ import annotations

from typing import Any

from bench import log_proofs

# Processes that are one Python event loop: they cannot use more than one core.
# (The registry runs several worker processes and the store rebuild one per core: not among them.)
SINGLE_THREADED = {"relay", "projections", "peer"}
SATURATED = 85.0


def limit_text(cpu: dict[str, float], commit_ms: float | None = None) -> str:
    """Which process (or the machine) limits a figure, from the CPU used during its phase."""
    if not cpu:
        return "no CPU figures"
    cores = cpu.get("cores", 1.0)
    groups = {k: v for k, v in cpu.items() if k not in ("machine", "cores")}
    ranked = sorted(groups.items(), key=lambda kv: -kv[1])
    listing = ", ".join(f"{k} {v:.0f}%" for k, v in ranked[:5] if v >= 1)
    top, top_value = ranked[0]
    machine = cpu.get("machine", 0.0)
    if top in SINGLE_THREADED and top_value >= SATURATED:
        return (
            f"{top} saturates its one core ({top_value:.0f}% of a core; one Python event loop) "
            f"— machine {machine:.0f}% of {cores:.0f} cores [{listing}]"
        )
    if machine >= SATURATED:
        return f"the {cores:.0f} cores are saturated (machine {machine:.0f}%) [{listing}]"
    waits = f"; a commit waits {commit_ms:.1f} ms for its fsync" if commit_ms else ""
    return f"no core saturated (machine {machine:.0f}%): waiting, not computing{waits} [{listing}]"


def capacity_text(per_unit: dict[str, float], names: tuple[str, ...], unit: str = "command") -> str:
    """ "registry 3.9 ms CPU/command (one core: ≤ 256/s)" for the named groups."""
    parts = []
    for name in names:
        ms = per_unit.get(name)
        if ms:
            parts.append(f"{name} {ms:.2f} ms CPU/{unit} (one core: ≤ {1000 / ms:,.0f}/s)")
    return "; ".join(parts)


def _phase(results: dict[str, Any], mode: str, rate: float | None = None) -> dict[str, Any] | None:
    for phase in results.get("load", {}).get("phases", []):
        if phase["mode"] == mode and (rate is None or phase["target_rate"] == rate):
            return dict(phase)
    return None


def kept_up(phase: dict[str, Any]) -> bool:
    clean = not phase["errors"] and not phase["not_sent"]
    if phase["mode"] == "closed":
        return clean
    return clean and phase["sustained"] >= 0.95 * phase["target_rate"]


def best_sustained(results: dict[str, Any]) -> tuple[float, str, dict[str, Any] | None]:
    best: tuple[float, str, dict[str, Any] | None] = (0.0, "no clean phase", None)
    for phase in results.get("load", {}).get("phases", []):
        if kept_up(phase) and phase["sustained"] > best[0]:
            best = (phase["sustained"], phase["name"], phase)
    return best


# Issue 12's table: each figure, its target and moonshot, and its value in the run before the
# issue (bench/results of 2026-11-22, commit 7eaf353), shown beside each run's.
TARGETS: dict[str, tuple[str, str, str, str]] = {
    "commands": (
        "commands/s over HTTP, sustained, no errors (÷ raw asyncpg ceiling)",
        "≥ 1,000 (≥ 0.25)",
        "≥ 2,000 (≥ 0.5)",
        "238/s (0.06)",
    ),
    "p99": (
        "p99 latency at 500 commands/s, open loop",
        "≤ 50 ms",
        "≤ 20 ms",
        "16 s",
    ),
    "lag": (
        "projection lag p99 at 500 commands/s",
        "≤ 100 ms",
        "≤ 50 ms",
        "261 ms",
    ),
    "rebuild": (
        "rebuild from the store, events/s (÷ raw read of the rows + COPY into a table)",
        "≥ 50,000 (≥ 0.25)",
        "≥ 100,000",
        "5,465/s",
    ),
    "relay": (
        "relay drain (÷ raw aiokafka produce of the same records)",
        "≥ 0.5",
        "≥ 0.8",
        "0.15",
    ),
    "append": (
        "in-process append (÷ the eventsourcing peer)",
        "≥ 3",
        "≥ 5",
        "2.25",
    ),
    "cold": (
        "a command on a cold agreement with 10,000 events (÷ one with 10)",
        "≤ 3",
        "≤ 1.5",
        "not measured",
    ),
}


# Issue 21's table (the command path): `today` is what the issue measured before it (the run of
# 2026-12-06, commit 332aa64, and the runs before it where it gives a range).
COMMAND_PATH_TARGETS: dict[str, tuple[str, str, str, str]] = {
    "registry_cpu": (
        "registry CPU per command over HTTP, closed loop",
        "≤ 0.8 ms",
        "≤ 0.4 ms",
        "1.71 ms",
    ),
    "http_vs_inprocess": (
        "HTTP commands/s ÷ in-process appends/s, same run",
        "≥ 0.6",
        "≥ 0.8",
        "0.29",
    ),
    "http_vs_asyncpg": (
        "HTTP commands/s ÷ raw asyncpg ceiling, same run",
        "≥ 0.2",
        "≥ 0.35",
        "0.09–0.12",
    ),
    "postgres_cpu": (
        "PostgreSQL CPU per command (closed loop)",
        "≤ 0.5 ms",
        "≤ 0.3 ms",
        "0.93 ms",
    ),
    "p99": (
        "p99 at 500 commands/s, open loop",
        "≤ 50 ms",
        "≤ 20 ms",
        "101–810 ms",
    ),
    "lag": (
        "projection lag p99 at 500 commands/s",
        "≤ 100 ms",
        "≤ 50 ms",
        "218–1,022 ms",
    ),
}
ISSUE_12 = "issue 12"
COMMAND_PATH = "issue 21"
TABLES = {
    COMMAND_PATH: "Issue 21's targets (the command path); `today` is what the issue measured before it "
    "(2026-12-06, commit 332aa64, and earlier runs where it gives a range).",
    ISSUE_12: "Issue 12's targets; `today` is the run before it (2026-11-22, commit 7eaf353).",
}

COMMAND_PATH_NOTE = (
    "`today` predates issue 20 (TLS and SCRAM to Kafka, signed envelopes), which added work to "
    "every command, and was measured on a faster day of this shared machine (compare the peer's "
    "commands/s below). The speed work's own effect, measured before and after it back to back "
    'on the same machine, is in the bench\'s README, section "Issue 21: the command path". The profiles '
    "behind these rows: `flame-registry-i21-before.svg`, `flame-projections-i21-before.svg` and "
    "`flame-relay-i21-before.svg` (py-spy under the closed loop before the speed work, "
    "`python -m bench.flame --tag i21-before`), and `flame-registry-i21-after.svg`, "
    "`flame-projections-i21-after.svg` and `flame-relay-i21-after.svg` after it "
    "(`python -m bench.hot --svg i21-after`, which also prints `pg_stat_statements`)."
)


def _target_row(table: str, key: str, measured: str, met: bool | None, limit: str) -> dict[str, Any]:
    """A row of a target table: the figure's target, moonshot and `today` beside this run's."""
    target, goal, moonshot, today = (COMMAND_PATH_TARGETS if table == COMMAND_PATH else TARGETS)[key]
    return {
        "table": table,
        "target": target,
        "today": today,
        "goal": goal,
        "moonshot": moonshot,
        "measured": measured,
        "met": met,
        "limit": limit,
    }


def _command_path_row(key: str, measured: str, met: bool | None, limit: str) -> dict[str, Any]:
    return _target_row(COMMAND_PATH, key, measured, met, limit)


def command_path_verdicts(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 21's figures: CPU per command of the registry and PostgreSQL in the closed loop, HTTP
    against the in-process append and the raw asyncpg ceiling, latency and lag at 500/s."""
    rows: list[dict[str, Any]] = []
    closed = _phase(results, "closed")
    names = ("registry", "postgres", "projections", "kafka", "relay", "bench client")
    per_command = (closed or {}).get("cpu_ms_per_command", {})
    profiles = "profiles: `flame-registry-i21-after.svg` (py-spy; before: `flame-registry-i21-before.svg`)"
    for key, process, goal in (("registry_cpu", "registry", 0.8), ("postgres_cpu", "postgres", 0.5)):
        value = per_command.get(process)
        rows.append(
            _command_path_row(
                key,
                "not run"
                if value is None or closed is None
                else f"{value:.2f} ms ({closed['sustained']:,.0f}/s closed loop)",
                None if value is None else value <= goal,
                (
                    capacity_text(per_command, names)
                    + (f"; {profiles}" if process == "registry" else "; statements: `python -m bench.hot`")
                )
                if value is not None
                else "",
            )
        )
    best, name, _ = best_sustained(results)
    ours = results.get("append", {}).get("ours")
    if ours and ours.get("per_second") and best:
        ratio = best / ours["per_second"]
        rows.append(
            _command_path_row(
                "http_vs_inprocess",
                f"{ratio:.2f} ({best:,.0f}/s {name} vs {ours['per_second']:,.0f}/s in-process)",
                ratio >= 0.6,
                "the HTTP path's own CPU (registry ms per command above) on top of the append's: " + profiles,
            )
        )
    else:
        rows.append(_command_path_row("http_vs_inprocess", "not measured", None, ""))
    ratio_pg = _ceiling(results, "HTTP commands/s (best clean phase)", "raw asyncpg")
    rows.append(
        _command_path_row(
            "http_vs_asyncpg",
            "not measured" if ratio_pg is None else f"{ratio_pg:.2f} ({best:,.0f}/s, {name})",
            None if ratio_pg is None else ratio_pg >= 0.2,
            limit_text(closed["cpu"]) if closed else "",
        )
    )
    at500 = _phase(results, "open", 500.0)
    if at500 is None:
        rows.append(_command_path_row("p99", "not run", None, ""))
        rows.append(_command_path_row("lag", "not run", None, ""))
        return rows
    p99 = at500["latency"]["p99"]
    rows.append(
        _command_path_row(
            "p99",
            f"{p99:,.1f} ms (p50 {at500['latency']['p50']:.1f} ms; {at500['sustained']:,.0f}/s achieved)",
            p99 <= 50 and kept_up(at500),
            limit_text(at500["cpu"]) + f"; service p99 {at500['service']['p99']:.1f} ms",
        )
    )
    http = at500["lag_http"]
    rows.append(
        _command_path_row(
            "lag",
            f"{http['p99']:.0f} ms via min_position (p50 {http['p50']:.0f}); {http['count']} samples",
            http["count"] > 0 and http["p99"] <= 100 and at500["lag_missing"] == 0,
            "relay/Kafka/projection path: "
            + ", ".join(
                f"{k} {v:.0f}%" for k, v in at500["cpu"].items() if k in ("relay", "projections", "kafka")
            )
            + f"; overall {limit_text(at500['cpu'])}",
        )
    )
    return rows


def _row(key: str, measured: str, met: bool | None, limit: str) -> dict[str, Any]:
    return _target_row(ISSUE_12, key, measured, met, limit)


def _ceiling(results: dict[str, Any], figure: str, ceiling: str) -> float | None:
    for r in results.get("ceilings", {}).get("ratios", []):
        if r["figure"] == figure and r["ceiling"] == ceiling:
            return float(r["ratio"])
    return None


def verdicts(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target row: issue 21's (the command path) first, then issue 12's."""
    return command_path_verdicts(results) + issue_12_verdicts(results)


def issue_12_verdicts(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    commit_ms = results.get("ceilings", {}).get("postgres", {}).get("single_client_commit_ms", {}).get("p50")
    names = ("registry", "postgres", "projections", "kafka", "relay", "bench client")

    value, name, phase = best_sustained(results)
    ratio = _ceiling(results, "HTTP commands/s (best clean phase)", "raw asyncpg")
    shown = f"{value:,.0f}/s ({ratio:.2f}; {name})" if ratio is not None else f"{value:,.0f}/s ({name})"
    rows.append(
        _row(
            "commands",
            shown,
            value >= 1000 and (ratio is None or ratio >= 0.25),
            (
                limit_text(phase["cpu"], commit_ms)
                + ". "
                + capacity_text(phase.get("cpu_ms_per_command", {}), names)
            )
            if phase
            else "no phase completed cleanly",
        )
    )

    at500 = _phase(results, "open", 500.0)
    if at500 is None:
        rows.append(_row("p99", "not run", None, ""))
        rows.append(_row("lag", "not run", None, ""))
    else:
        p99 = at500["latency"]["p99"]
        rows.append(
            _row(
                "p99",
                f"{p99:,.1f} ms (p50 {at500['latency']['p50']:.1f} ms; {at500['sustained']:,.0f}/s achieved, "
                f"errors {sum(at500['errors'].values())})",
                p99 <= 50 and kept_up(at500),
                limit_text(at500["cpu"], commit_ms)
                + f". Service p50 {at500['service']['p50']:.1f} ms; "
                + capacity_text(at500.get("cpu_ms_per_command", {}), names),
            )
        )
        http, db = at500["lag_http"], at500["lag_db"]
        relay_projection = {k: v for k, v in at500["cpu"].items() if k in ("relay", "projections", "kafka")}
        rows.append(
            _row(
                "lag",
                f"{http['p99']:.0f} ms via min_position (p50 {http['p50']:.0f}); "
                f"{db['p99']:.0f} ms applied-row poll (p50 {db['p50']:.0f}); {http['count']} samples",
                http["count"] > 0 and http["p99"] <= 100 and at500["lag_missing"] == 0,
                "relay/Kafka/projection path: "
                + ", ".join(f"{k} {v:.0f}%" for k, v in relay_projection.items())
                + f"; overall {limit_text(at500['cpu'])}",
            )
        )

    replay = results.get("replay", {})
    store = replay.get("rebuild_store")
    ceiling = replay.get("rebuild_ceiling", {})
    if store and "events_per_second" in store:
        rate = store["events_per_second"]
        ceiling_rate = ceiling.get("events_per_second")
        of_ceiling = rate / ceiling_rate if ceiling_rate else None
        rows.append(
            _row(
                "rebuild",
                f"{rate:,.0f}/s over {store['read']:,} events"
                + (f" ({of_ceiling:.2f} of {ceiling_rate:,.0f}/s)" if of_ceiling is not None else ""),
                rate >= 50_000 and (of_ceiling is None or of_ceiling >= 0.25),
                limit_text(store.get("cpu", {}))
                + ". "
                + capacity_text(store.get("cpu_ms_per_event", {}), ("rebuild", "postgres"), "event"),
            )
        )
    else:
        rows.append(
            _row(
                "rebuild",
                replay.get("skipped", "not measured"),
                None,
                "",
            )
        )

    drain = replay.get("relay_drain")
    relay_ratio = _ceiling(results, "relay events/s (outbox backlog)", "raw aiokafka")
    rows.append(
        _row(
            "relay",
            f"{relay_ratio:.2f} ({drain['events_per_second']:,.0f} events/s)"
            if drain and relay_ratio is not None
            else replay.get("skipped", "not measured"),
            None if relay_ratio is None else relay_ratio >= 0.5,
            (
                limit_text(drain.get("cpu", {}))
                + ". "
                + capacity_text(drain.get("cpu_ms_per_event", {}), ("relay", "kafka", "postgres"), "event")
            )
            if drain
            else "",
        )
    )

    append = results.get("append", {})
    ours, peer = append.get("ours"), append.get("peer")
    if ours and peer and peer.get("per_second"):
        ratio = ours["per_second"] / peer["per_second"]
        rows.append(
            _row(
                "append",
                f"{ratio:.2f} ({ours['per_second']:,.0f} vs {peer['per_second']:,.0f} commands/s)",
                ratio >= 3,
                "ours: "
                + limit_text(ours.get("cpu", {}), commit_ms)
                + ", "
                + capacity_text(ours.get("cpu_ms_per_command", {}), ("bench client", "postgres"))
                + "; theirs: "
                + limit_text(peer.get("cpu", {}), commit_ms)
                + ", "
                + capacity_text(peer.get("cpu_ms_per_command", {}), ("peer", "postgres")),
            )
        )
    else:
        rows.append(
            _row(
                "append",
                append.get("peer_skipped", "not measured"),
                None,
                "",
            )
        )

    unlogged = results.get("load", {}).get("without_log")
    logged = _phase(results, "closed")
    if unlogged and logged and unlogged.get("sustained"):
        ratio = logged["sustained"] / unlogged["sustained"]
        rows.append(
            {
                "target": "transparency log over HTTP (closed loop with ÷ without the log: its queue trigger off, so nothing to integrate)",
                "measured": f"{ratio:.3f} ({logged['sustained']:,.0f} vs {unlogged['sustained']:,.0f} commands/s; "
                f"p99 {logged['latency']['p99']:.0f} vs {unlogged['latency']['p99']:.0f} ms)",
                "met": None,
                "limit": "the log's writes (queue row, leaf, stored hashes) share the 2 cores and PostgreSQL",
            }
        )
    tree = append.get("tree_cost")
    if tree:
        rows.append(
            {
                "target": "transparency log on the command path (in-process append with ÷ without the tree's queue trigger)",
                "measured": f"{tree['ratio']:.3f} ({tree['with_per_second']:,.0f} vs {tree['without_per_second']:,.0f} "
                f"commands/s; p99 {tree['with_p99_ms']:.1f} vs {tree['without_p99_ms']:.1f} ms)",
                "met": None,
                "limit": "issue 14: not noticeably slower",
            }
        )

    cold = results.get("cold")
    if cold and cold.get("ratio") is not None:
        rows.append(
            _row(
                "cold",
                str(cold.get("measured", f"{cold['ratio']:.2f}")),
                cold["ratio"] <= 3,
                str(cold.get("limit", "")),
            )
        )
    else:
        rows.append(
            _row(
                "cold",
                (cold or {}).get("skipped", "not measured"),
                None,
                "",
            )
        )
    return rows


def _verdict(met: bool | None) -> str:
    return "—" if met is None else ("**met**" if met else "**missed**")


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|")


def targets_markdown(rows: list[dict[str, Any]]) -> list[str]:
    """The report's target tables: issue 21's, then issue 12's, each row with its verdict."""
    lines: list[str] = []
    for table, caption in TABLES.items():
        lines += [
            "",
            caption,
            "",
            "| figure | today | target | moonshot | this run | verdict | what limits it |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in rows:
            if row.get("table", ISSUE_12) != table:
                continue
            lines.append(
                f"| {row['target']} | {_cell(row.get('today', ''))} | {_cell(row.get('goal', ''))} "
                f"| {_cell(row.get('moonshot', ''))} | {_cell(row['measured'])} | {_verdict(row['met'])} "
                f"| {_cell(row['limit'])} |"
            )
        if table == COMMAND_PATH:
            lines += ["", COMMAND_PATH_NOTE]
    return lines


def markdown(results: dict[str, Any]) -> str:
    env = results["environment"]
    lines = [
        f"# Benchmark — {results['started_at']} ({results['mode']})",
        "",
        f"{env['cpu_count']} cores · Python {env['python']} · PostgreSQL {env['postgresql']} · "
        f"Kafka {env['kafka']} · asyncpg {env['asyncpg']} · aiokafka {env['aiokafka']} · "
        f"httpx {env['httpx']} · commit {env['git_commit']} · {env['clients']} concurrent clients",
        "",
        "CPU figures are % of one core (200 % = both cores of a 2-core machine); `others` is CPU "
        "used by programs that are not part of the run (noise).",
        "",
        "## Targets",
        *targets_markdown(results["verdicts"]),
    ]

    lines += [
        "",
        "The profiles behind issue 12's `what limits it`: `flame-registry-after.svg`, `flame-relay-after.svg` and "
        "`flame-projections-after.svg` beside this file (py-spy under the closed loop, made by "
        "`python -m bench.flame --tag after`; `flame-registry-before.svg`, `flame-relay-before.svg` and "
        "`flame-projections-before.svg` are the same before issue 12), the registry's "
        "cProfile with `--profile`, and `flame-rebuild-after.svg` (py-spy of a whole-store rebuild of "
        "100,000 bench events with its worker processes: `py-spy record --subprocesses -o "
        "flame-rebuild-after.svg -- coordreg-audit rebuild --from store --database-url …`).",
    ]
    lines += [
        "",
        "## 1–2. Commands over HTTP (registry, relay, projections as separate processes)",
        "",
        "Latency runs from the command's scheduled start (open loop: waiting for a free client "
        "counts); `service p99` from the moment it was sent. Lag: `http` = `GET /v1/agreements/{id}"
        "?min_position=` right after the 2xx; `db` = the applied row polled every 5 ms.",
        "",
        "| phase | target/s | sustained/s | ok | errors | not sent | p50 ms | p99 ms | max ms "
        "| service p99 ms | lag http p50/p99 ms | lag db p50/p99 ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in results.get("load", {}).get("phases", []):
        errors = ", ".join(f"{k}×{v}" for k, v in p["errors"].items()) or "0"
        lines.append(
            f"| {p['name']} | {p['target_rate'] or 'max'} | {p['sustained']:,.0f} | {p['ok']:,} | {errors} "
            f"| {p['not_sent']} | {p['latency']['p50']:.1f} | {p['latency']['p99']:.1f} | {p['latency']['max']:.0f} "
            f"| {p['service']['p99']:.1f} | {p['lag_http']['p50']:.0f} / {p['lag_http']['p99']:.0f} "
            f"| {p['lag_db']['p50']:.0f} / {p['lag_db']['p99']:.0f} |"
        )
    load = results.get("load", {})
    samples = [(p["name"], e) for p in load.get("phases", []) for e in p.get("error_samples", [])[:3]]
    if samples:
        lines.append("")
        lines += [f"- error in {name}: `{sample}`" for name, sample in samples]
    if "catch_up_seconds" in load:
        lines.append("")
        lines.append(
            f"After the last phase the projections applied the last command in {load['catch_up_seconds']:.2f} s."
        )
    kinds = {}
    for p in load.get("phases", []):
        if p["mode"] == "closed":
            kinds = p["by_kind"]
    if kinds:
        lines += ["", "Service time by command in the closed-loop run (ms):", ""]
        lines += ["| command | count | p50 | p99 |", "|---|---|---|---|"]
        for kind, s in kinds.items():
            lines.append(f"| {kind} | {s['count']:,} | {s['p50']:.1f} | {s['p99']:.1f} |")

    lines += [
        "",
        "## CPU per phase (% of one core)",
        "",
        "| phase | registry | relay | projections | postgres | kafka | bench client | rebuild/peer | others | machine % |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, cpu in results.get("cpu_by_phase", {}).items():
        side = cpu.get("rebuild", cpu.get("peer", 0.0))
        lines.append(
            f"| {name} | {cpu.get('registry', 0):.0f} | {cpu.get('relay', 0):.0f} | {cpu.get('projections', 0):.0f} "
            f"| {cpu.get('postgres', 0):.0f} | {cpu.get('kafka', 0):.0f} | {cpu.get('bench client', 0):.0f} "
            f"| {side:.0f} | {cpu.get('others', 0):.0f} | {cpu.get('machine', 0):.0f} |"
        )

    groups = ("registry", "relay", "projections", "postgres", "kafka", "bench client")
    lines += [
        "",
        "CPU milliseconds per successful command (1000 ÷ this = commands/s one core of that process could do):",
        "",
        "| phase | " + " | ".join(groups) + " |",
        "|---|" + "---|" * len(groups),
    ]
    for p in load.get("phases", []):
        per = p.get("cpu_ms_per_command", {})
        lines.append(f"| {p['name']} | " + " | ".join(f"{per.get(g, 0):.2f}" for g in groups) + " |")

    replay = results.get("replay", {})
    lines += ["", "## 3. Replay (the audit tool's rebuild)", ""]
    if replay.get("skipped"):
        lines.append(replay["skipped"])
    if replay.get("generated"):
        g = replay["generated"]
        lines.append(
            f"Generated {g['events']:,} events ({g['agreements']:,} agreement lives) through "
            f"`PostgresEventStore.append` in {g['seconds']:.1f} s ({g['events_per_second']:,.0f} events/s)."
        )
    if replay.get("relay_drain"):
        d = replay["relay_drain"]
        lines.append(
            f"The relay, restarted alone, drained an outbox backlog of {d['events']:,} events to Kafka in "
            f"{d['seconds']:.1f} s ({d['events_per_second']:,.0f} events/s); the live projection, restarted "
            f"after it, applied them in {d['projection_seconds']:.1f} s "
            f"({d['projection_events_per_second']:,.0f} events/s)."
        )
    if replay.get("rebuild_ceiling"):
        c = replay["rebuild_ceiling"]
        lines.append(
            f"The rebuild's ceiling, the same {int(c['events']):,} rows read from the store and COPYed into a "
            f"table with nothing decoded: {c['events_per_second']:,.0f} events/s."
        )
    rows = [(k, replay.get(f"rebuild_{k}")) for k in ("store", "kafka")]
    if any(r and "events_per_second" in r for _, r in rows):
        lines += [
            "",
            "| rebuild from | events read | applied | seconds | events/s | rebuild CPU % | postgres CPU % |",
            "|---|---|---|---|---|---|---|",
        ]
        for source, r in rows:
            if r and "events_per_second" in r:
                cpu = r.get("cpu", {})
                lines.append(
                    f"| {source} | {r['read']:,} | {r['applied']:,} | {r['seconds']:.1f} | "
                    f"{r['events_per_second']:,.0f} | {cpu.get('rebuild', 0):.0f} | {cpu.get('postgres', 0):.0f} |"
                )

    ceilings = results.get("ceilings", {})
    lines += ["", "## 4. Ceilings (same rows, same durability, same concurrency)", ""]
    pg, kafka = ceilings.get("postgres"), ceilings.get("kafka")
    if pg:
        lines.append(
            f"PostgreSQL: {pg['transactions']:,} one-event transactions (event + outbox row) with raw asyncpg, "
            f"{pg['clients']} clients on {pg['pool_size']} connections, synchronous_commit={pg['synchronous_commit']}, "
            f"fsync={pg['fsync']}: **{pg['per_second']:,.0f} transactions/s** (p99 {pg['latency_ms']['p99']:.1f} ms); "
            f"one client alone commits in {pg['single_client_commit_ms']['p50']:.2f} ms (p50)."
        )
    if kafka:
        lines.append(
            f"Kafka: {kafka['messages']:,} messages ({kafka['mean_message_bytes']} B mean) with raw aiokafka, "
            f"acks=all, idempotent: **{kafka['per_second']:,.0f} messages/s** ({kafka['megabytes_per_second']} MB/s)."
        )
    if ceilings.get("ratios"):
        lines += ["", "| system figure | value | ceiling | ratio |", "|---|---|---|---|"]
        for r in ceilings["ratios"]:
            lines.append(
                f"| {r['figure']} | {r['value']:,.0f}/s | {r['ceiling']} {r['ceiling_value']:,.0f}/s | {r['ratio']:.2f} |"
            )

    append = results.get("append", {})
    lines += ["", "## 5. Peer: append throughput in-process, no HTTP", ""]
    ours, peer = append.get("ours"), append.get("peer")
    if ours or peer:
        lines += [
            "| system | commands | errors | seconds | commands/s | p50 ms | p99 ms | its CPU % | postgres CPU % |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for label, r, own in (("ours: CommandHandler + PostgresEventStore", ours, "bench client"),
                              (f"eventsourcing {peer.get('version', '') if peer else ''} (PostgreSQL)", peer, "peer")):  # fmt: skip
            if r and "per_second" in r:
                cpu = r.get("cpu", {})
                lines.append(
                    f"| {label} | {r['commands']:,} | {r['errors']} | {r['seconds']:.1f} | {r['per_second']:,.0f} "
                    f"| {r['latency_ms']['p50']:.1f} | {r['latency_ms']['p99']:.1f} | {cpu.get(own, 0):.0f} "
                    f"| {cpu.get('postgres', 0):.0f} |"
                )
    if append.get("peer_skipped"):
        lines.append(append["peer_skipped"])
    if append.get("ratio"):
        lines.append("")
        lines.append(f"Ours ÷ theirs: **{append['ratio']:.2f}**.")
    if ours and ours.get("profile"):
        lines += [
            "",
            "Where our in-process append spends its CPU (cProfile of a separate, untimed pass; top functions by own time):",
            "",
            "```",
            *ours["profile"],
            "```",
        ]
    cold = results.get("cold")
    if cold and "with_snapshots" in cold:
        lines += [
            "",
            "## 6. A command on a cold agreement (in-process, nothing cached, median of "
            f"{cold['repeats']} ms)",
            "",
            "| events in the stream | with snapshots | ÷ smallest | without snapshots | ÷ smallest |",
            "|---|---|---|---|---|",
        ]
        for size in cold["with_snapshots"]["median_ms"]:
            w, wo = cold["with_snapshots"], cold["without_snapshots"]
            lines.append(
                f"| {int(size):,} | {w['median_ms'][size]:.2f} | {w['ratio_to_smallest'][size]:.2f} "
                f"| {wo['median_ms'][size]:.2f} | {wo['ratio_to_smallest'][size]:.2f} |"
            )

    if results.get("profile"):
        lines += [
            "",
            "## Profile of the registry (cProfile, CPU time, top functions by own time)",
            "",
            "The registry ran under cProfile in this run (`--profile`), so its HTTP figures above are slower than normal.",
            "",
            "```",
        ]
        lines += results["profile"]
        lines += ["```"]
    lines += ["", "Latency over time: `latency.png` beside this file.", ""]
    if results.get("log_proofs"):
        lines += log_proofs.render(results["log_proofs"])
    return "\n".join(lines)
