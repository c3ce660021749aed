"""Prometheus's own checker on what we ship: `promtool check rules` on the PrometheusRule's
spec (the plain rules file, deploy/observability/README.md), and `promtool check metrics` (the
naming lint) on every metric the services define.

promtool is built once from the Go module proxy into .cache/bin (a few minutes on a fresh
machine, seconds with Go's caches warm). No Go or a failed build fails these tests: they
never skip."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest

import services.projections.adapters.kafka_consumer
import services.projections.entrypoints.app
import services.registry.adapters.relay
import services.registry.entrypoints.app  # noqa: F401 (their metrics, registered on import)
from deploy.local.gomodules import download_pinned
from tests.support.promql import rules_file_text

ROOT = Path(__file__).resolve().parents[2]
# Prometheus 3.16's module version (Prometheus tags its Go module v0.<minor>.<patch>).
PROMTOOL_VERSION = "v0.316.0"
PROMTOOL = ROOT / ".cache" / "bin" / f"promtool-{PROMTOOL_VERSION}"


@pytest.fixture(scope="session")
def promtool() -> Path:
    if PROMTOOL.exists():
        return PROMTOOL
    go = shutil.which("go")
    if go is None:
        pytest.fail("promtool is built with Go, which is not installed (see README: prerequisites)")
    build = PROMTOOL.parent / "build"
    env = {**os.environ, "GOBIN": str(build), "GOFLAGS": "-mod=mod"}
    build.mkdir(parents=True, exist_ok=True)
    # Prometheus's module checked against its committed hash first; its go.sum pins the rest.
    download_pinned(go, f"github.com/prometheus/prometheus@{PROMTOOL_VERSION}", cwd=build, env=env)
    try:
        done = subprocess.run(
            [go, "install", f"github.com/prometheus/prometheus/cmd/promtool@{PROMTOOL_VERSION}"],
            env=env,
            capture_output=True,
            text=True,
            timeout=1800,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"building promtool took over 30 minutes: {exc.stderr!r:.2000}")
    if done.returncode != 0:
        pytest.fail(f"building promtool failed:\n{done.stderr[-4000:]}")
    (build / "promtool").replace(PROMTOOL)
    shutil.rmtree(build, ignore_errors=True)
    return PROMTOOL


def test_the_alert_rules_pass_promtool(promtool: Path, tmp_path: Path) -> None:
    rules = tmp_path / "coordreg-rules.yml"
    rules.write_text(rules_file_text(), encoding="utf-8")
    checked = subprocess.run([promtool, "check", "rules", rules], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 16 rules found" in checked.stdout, checked.stdout


def test_the_metric_names_pass_promtools_lint(promtool: Path) -> None:
    exposition = generate_latest()
    for name in ("http_request_errors_total", "relay_outbox_oldest_age_seconds", "projection_lag_seconds"):
        assert f"# TYPE {name.removesuffix('_total')}".encode() in exposition
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=exposition, capture_output=True, timeout=60
    )
    assert checked.returncode == 0 and not checked.stdout.strip(), checked.stdout + checked.stderr


def fires_on_the_third_minute(
    promtool: Path,
    tmp_path: Path,
    alert: str,
    input_series: list[dict[str, str]],
    labels: dict[str, str],
    also_silent: tuple[str, ...] = (),
) -> None:
    """`promtool test rules` (evaluated every minute): `alert` is silent at 2m and fires at 3m with
    `labels` and its annotations filled in; each alert of `also_silent` is silent at 4m."""
    (tmp_path / "coordreg-rules.yml").write_text(rules_file_text(), encoding="utf-8")
    rules = yaml.safe_load(rules_file_text())
    [rule] = [r for g in rules["groups"] for r in g["rules"] if r.get("alert") == alert]

    def filled(text: str) -> str:
        for name, value in labels.items():
            text = text.replace("{{ $labels." + name + " }}", value)
        return text

    expected = {
        "exp_labels": {**labels, "severity": rule["labels"]["severity"]},
        "exp_annotations": {name: filled(text) for name, text in rule["annotations"].items()},
    }
    test = {
        "rule_files": ["coordreg-rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": input_series,
                "alert_rule_test": [
                    {"eval_time": "2m", "alertname": alert, "exp_alerts": []},
                    {"eval_time": "3m", "alertname": alert, "exp_alerts": [expected]},
                    *({"eval_time": "4m", "alertname": other, "exp_alerts": []} for other in also_silent),
                ],
            }
        ],
    }
    path = tmp_path / f"{alert}-test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False, allow_unicode=True), encoding="utf-8")
    tested = subprocess.run([promtool, "test", "rules", path], capture_output=True, text=True, timeout=60)
    assert tested.returncode == 0, tested.stdout + tested.stderr


def test_a_refused_record_pages_at_once_with_its_reason(promtool: Path, tmp_path: Path) -> None:
    """One record refused as not the registry's (docs/adr/0003) fires CoordregForgedRecords at the
    next evaluation, labelled with the check it failed; none does not."""
    series = 'projection_records_refused_total{{namespace="coordreg",pod="p",reason="{}"}}'
    fires_on_the_third_minute(
        promtool,
        tmp_path,
        "CoordregForgedRecords",
        [
            {"series": series.format("signature"), "values": "0 0 0 1 1"},
            {"series": series.format("hash"), "values": "0 0 0 0 0"},
        ],
        {"namespace": "coordreg", "reason": "signature"},
    )


def test_a_witness_refusing_a_checkpoint_pages_at_once_naming_it(promtool: Path, tmp_path: Path) -> None:
    """A witness answering 422 (a split view) fires CoordregWitnessAlarm at the next evaluation,
    labelled with the witness and its answer; a witness answering nothing but failures does not
    (that is CoordregWitnessUnreachable's, after 30 minutes)."""
    series = 'log_witness_alarms_total{{namespace="coordreg",job="coordreg-relay",witness="{}",status="422"}}'
    backoff = 'log_witness_backoff_seconds{{namespace="coordreg",job="coordreg-relay",witness="{}"}}'
    fires_on_the_third_minute(
        promtool,
        tmp_path,
        "CoordregWitnessAlarm",
        [
            {"series": series.format("bo-tu-phap"), "values": "0 0 0 1 1"},
            {"series": series.format("so-tttt"), "values": "0 0 0 0 0"},
            {"series": backoff.format("so-tttt"), "values": "0 1 2 4 8"},
        ],
        {"namespace": "coordreg", "witness": "bo-tu-phap", "status": "422"},
        also_silent=("CoordregWitnessUnreachable",),
    )


def test_a_record_too_large_for_the_tiles_warns_once_it_enters_the_log(
    promtool: Path, tmp_path: Path
) -> None:
    """A leaf no entry bundle can hold (ADR 0020) fires CoordregLogRecordTooLargeForTiles at the
    next evaluation; a log without one does not."""
    series = 'log_leaves_too_large_for_bundles_total{{namespace="{}",job="coordreg-relay",pod="r"}}'
    fires_on_the_third_minute(
        promtool,
        tmp_path,
        "CoordregLogRecordTooLargeForTiles",
        [
            {"series": series.format("coordreg"), "values": "0 0 0 1 1"},
            {"series": series.format("other"), "values": "0 0 0 0 0"},
        ],
        {"namespace": "coordreg"},
    )
