"""Verdicts for the issue's targets, and the markdown table of a run."""

from __future__ import annotations

from typing import Any

# Processes that are one Python event loop: they cannot use more than one core.
SINGLE_THREADED = {"registry", "relay", "projections", "bench client", "rebuild", "peer"}
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


def verdicts(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    commit_ms = results.get("ceilings", {}).get("postgres", {}).get("single_client_commit_ms", {}).get("p50")

    value, name, phase = best_sustained(results)
    rows.append(
        {
            "target": "≥ 1,000 commands/s sustained (HTTP, no errors)",
            "measured": f"{value:,.0f} commands/s ({name})",
            "met": value >= 1000,
            "limit": (
                limit_text(phase["cpu"], commit_ms)
                + ". "
                + capacity_text(phase.get("cpu_ms_per_command", {}), ("registry", "postgres", "bench client"))
            )
            if phase
            else "no phase completed cleanly",
        }
    )

    at500 = _phase(results, "open", 500.0)
    if at500 is None:
        rows.append(
            {"target": "p99 ≤ 25 ms at 500 commands/s", "measured": "not run", "met": None, "limit": ""}
        )
        rows.append(
            {
                "target": "projection lag p99 ≤ 250 ms at 500/s",
                "measured": "not run",
                "met": None,
                "limit": "",
            }
        )
    else:
        p99 = at500["latency"]["p99"]
        rows.append(
            {
                "target": "p99 ≤ 25 ms at 500 commands/s",
                "measured": f"p99 {p99:.1f} ms (p50 {at500['latency']['p50']:.1f} ms; "
                f"{at500['sustained']:,.0f}/s achieved, errors {sum(at500['errors'].values())})",
                "met": p99 <= 25 and kept_up(at500),
                "limit": limit_text(at500["cpu"], commit_ms)
                + f". Service p50 {at500['service']['p50']:.1f} ms; "
                + capacity_text(at500.get("cpu_ms_per_command", {}), ("registry", "postgres")),
            }
        )
        http, db = at500["lag_http"], at500["lag_db"]
        relay_projection = {k: v for k, v in at500["cpu"].items() if k in ("relay", "projections", "kafka")}
        rows.append(
            {
                "target": "projection lag p99 ≤ 250 ms at 500/s",
                "measured": f"p99 {http['p99']:.0f} ms via min_position (p50 {http['p50']:.0f}); "
                f"p99 {db['p99']:.0f} ms applied-row poll (p50 {db['p50']:.0f}); {http['count']} samples",
                "met": http["count"] > 0 and http["p99"] <= 250 and at500["lag_missing"] == 0,
                "limit": "relay/Kafka/projection path: "
                + ", ".join(f"{k} {v:.0f}%" for k, v in relay_projection.items())
                + f"; overall {limit_text(at500['cpu'])}",
            }
        )

    replay = results.get("replay", {})
    store = replay.get("rebuild_store")
    if store and "events_per_second" in store:
        rows.append(
            {
                "target": "rebuild ≥ 50,000 events/s from the store",
                "measured": f"{store['events_per_second']:,.0f} events/s over {store['read']:,} events",
                "met": store["events_per_second"] >= 50_000,
                "limit": limit_text(store.get("cpu", {}))
                + ". "
                + capacity_text(store.get("cpu_ms_per_event", {}), ("rebuild", "postgres"), "event"),
            }
        )
    else:
        rows.append(
            {
                "target": "rebuild ≥ 50,000 events/s from the store",
                "measured": replay.get("skipped", "not measured"),
                "met": None,
                "limit": "",
            }
        )

    append = results.get("append", {})
    ours, peer = append.get("ours"), append.get("peer")
    if ours and peer and "per_second" in peer and peer["per_second"]:
        ratio = ours["per_second"] / peer["per_second"]
        rows.append(
            {
                "target": "append throughput ≥ the eventsourcing peer",
                "measured": f"{ours['per_second']:,.0f} vs {peer['per_second']:,.0f} commands/s "
                f"(ours ÷ theirs = {ratio:.2f})",
                "met": ratio >= 1,
                "limit": "ours: "
                + limit_text(ours.get("cpu", {}), commit_ms)
                + ", "
                + capacity_text(ours.get("cpu_ms_per_command", {}), ("bench client", "postgres"))
                + "; theirs: "
                + limit_text(peer.get("cpu", {}), commit_ms)
                + ", "
                + capacity_text(peer.get("cpu_ms_per_command", {}), ("peer", "postgres")),
            }
        )
    else:
        rows.append(
            {
                "target": "append throughput ≥ the eventsourcing peer",
                "measured": append.get("peer_skipped", "not measured"),
                "met": None,
                "limit": "",
            }
        )
    return rows


def _verdict(met: bool | None) -> str:
    return "—" if met is None else ("**met**" if met else "**missed**")


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|")


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
        "",
        "| target | measured | verdict | what limits it |",
        "|---|---|---|---|",
    ]
    for row in results["verdicts"]:
        lines.append(
            f"| {row['target']} | {_cell(row['measured'])} | {_verdict(row['met'])} | {_cell(row['limit'])} |"
        )

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
            f"Relay drained an outbox backlog of {d['events']:,} events to Kafka in {d['seconds']:.1f} s "
            f"({d['events_per_second']:,.0f} events/s); the live projection applied them by "
            f"{d['projection_seconds']:.1f} s ({d['projection_events_per_second']:,.0f} events/s)."
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
    return "\n".join(lines)
