"""The monitoring manifests' shape, the PromQL name reader the export test relies on, and the
metric helpers that need no server (problem types, per-partition lag)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml
from aiokafka import TopicPartition
from prometheus_client import REGISTRY

from services.common.observability import problem_kind
from services.projections.adapters import worker_metrics
from services.projections.adapters.worker_metrics import PartitionLag
from tests.support.promql import DASHBOARD, MONITORING, RULES, metric_names, rule_expressions


def test_the_name_reader_keeps_metrics_and_drops_functions_labels_and_durations() -> None:
    expr = """histogram_quantile(0.99, sum by (service, route, le) (rate(http_request_duration_seconds_bucket{status_class="2xx", route=~"/v1/.*"}[$__rate_interval])))
      > 0.5 and on (service) group_left (pod) sum(rate(http_requests_total[5m] offset 1h30m)) without (job) > bool 1e3
      unless absent(up{job="coordreg-relay"} == 1) or max by (namespace) (relay_outbox_backlog) > 10"""
    assert metric_names(expr) == {
        "http_request_duration_seconds_bucket",
        "http_requests_total",
        "up",
        "relay_outbox_backlog",
    }
    # A misspelt name is read as it is written, so the export test reports it.
    assert metric_names("rate(relay_publishd_total[5m])") == {"relay_publishd_total"}


def test_every_alert_has_a_duration_a_severity_and_words_for_the_person_paged() -> None:
    document = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    assert document["apiVersion"] == "monitoring.coreos.com/v1" and document["kind"] == "PrometheusRule"
    alerts = [rule for group in document["spec"]["groups"] for rule in group["rules"]]
    names = [rule["alert"] for rule in alerts]
    assert len(names) == len(set(names))
    for rule in alerts:
        assert rule["for"], rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
    # What the platform asked to be paged about.
    for wanted in (
        "CoordregOutboxBacklogGrowing",
        "CoordregOutboxStale",
        "CoordregProjectionLagHigh",
        "CoordregDeadLetters",
        "CoordregForgedRecords",
        "CoordregRelayNoLeader",
        "CoordregRelayTwoLeaders",
        "CoordregHighErrorRatio",
        "CoordregLatencyHigh",
        "CoordregTargetDown",
    ):
        assert wanted in names
    assert dict(rule_expressions()).keys() == set(names)


def test_the_dashboard_ships_through_kustomize_with_a_datasource_variable() -> None:
    kustomization = yaml.safe_load((MONITORING / "kustomization.yaml").read_text(encoding="utf-8"))
    assert set(kustomization["resources"]) == {"podmonitor.yaml", "prometheusrule.yaml"}
    [generator] = kustomization["configMapGenerator"]
    assert generator["files"] == [DASHBOARD.name]
    assert generator["options"]["labels"]["grafana_dashboard"] == "1"
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert 36 <= dashboard["schemaVersion"] <= 41 and dashboard["uid"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert (
        variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    )
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"] and all(t["expr"] for t in panel["targets"]), panel["title"]


def test_the_pod_monitor_scrapes_the_api_and_the_metrics_ports() -> None:
    monitor = yaml.safe_load((MONITORING / "podmonitor.yaml").read_text(encoding="utf-8"))
    assert monitor["kind"] == "PodMonitor"
    assert {e["port"] for e in monitor["spec"]["podMetricsEndpoints"]} == {"http", "metrics"}
    for endpoint in monitor["spec"]["podMetricsEndpoints"]:
        *drops, job = endpoint["relabelings"]
        assert job["targetLabel"] == "job" and job["replacement"] == "coordreg-$1"
        # The officials' console has an `http` port but no /metrics: not scraped, so that
        # CoordregTargetDown does not fire for it. Nothing else is left out.
        expected = [("console", "drop")] if endpoint["port"] == "http" else []
        assert [(d["regex"], d["action"]) for d in drops] == expected
        assert all(d["sourceLabels"] == job["sourceLabels"] for d in drops)


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        (
            b'{"type":"https://coordination-registry.gov.vn/problems/rule-violated","title":"x"}',
            "rule-violated",
        ),
        (b'{"detail": "d", "type": "https://coordination-registry.gov.vn/problems/not-found"}', "not-found"),
        (b'{"type":"https://coordination-registry.gov.vn/problems/NOT<valid>"}', "other"),
        (b'{"type":"https://coordination-registry.gov.vn/problems/' + b"x" * 100 + b'"}', "other"),
        (b'{"error":"plain"}', ""),
        (b"", ""),
    ],
)
def test_the_problem_type_is_read_from_the_body_and_bounded(body: bytes, kind: str) -> None:
    assert problem_kind(body) == kind


@dataclass
class FakeConsumer:
    """What PartitionLag reads of an AIOKafkaConsumer."""

    stable: dict[TopicPartition, int | None]
    positions: dict[TopicPartition, int] = field(default_factory=dict)

    def assignment(self) -> set[TopicPartition]:
        return set(self.stable)

    def last_stable_offset(self, tp: TopicPartition) -> int | None:
        return self.stable[tp]

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.stable[tp]

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]


@dataclass
class FakeRecord:
    timestamp: int


def lag(partition: int, kind: str = "records") -> float | None:
    name = "projection_consumer_lag_records" if kind == "records" else "projection_lag_seconds"
    return REGISTRY.get_sample_value(name, {"partition": str(partition)})


async def test_partition_lag_is_end_minus_position_and_seconds_grow_only_while_behind(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def no_database(pool: Any) -> None:
        return None

    monkeypatch.setattr(worker_metrics, "recount_stored", no_database)
    tp0, tp1, tp2 = (TopicPartition("t", p) for p in (90, 91, 92))
    consumer = FakeConsumer({tp0: 10, tp1: 7, tp2: None}, {tp0: 4, tp1: 7, tp2: 0})
    tracker = PartitionLag(every_seconds=0)
    tracker.assigned([tp0, tp1, tp2])
    published = time.time() - 30
    tracker.applied({tp0: [FakeRecord(int(published * 1000))]})
    await tracker.update(consumer, None)  # type: ignore[arg-type]
    assert lag(90) == 6 and lag(91) == 0
    assert lag(92) is None, "no fetch answered for it yet: no value rather than a made-up one"
    # Behind since this update saw it, and the last applied record is older: the later counts.
    assert 0 <= (lag(90, "seconds") or 0) < 5 and lag(91, "seconds") == 0
    consumer.positions[tp0] = 10
    await tracker.update(consumer, None)  # type: ignore[arg-type]
    assert lag(90) == 0 and lag(90, "seconds") == 0
    tracker.revoked([tp0])
    assert lag(90) is None and lag(90, "seconds") is None, "a revoked partition's series go away"
    tracker.clear()
    assert lag(91) is None
