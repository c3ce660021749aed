"""The metric names the monitoring manifests ask Prometheus for, read out of their PromQL.

A small tokenizer, enough for the expressions we write: string literals, label matchers
(`{...}`), ranges (`[5m]`, `[10m:1m]`), durations, Grafana variables and numbers are skipped; an
identifier followed by `(` (or by `by`/`without`) is a function or an aggregation; the parenthesised list after
by/without/on/ignoring/group_left/group_right holds label names; the rest are metric names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "kubernetes" / "base" / "monitoring"
RULES = MONITORING / "prometheusrule.yaml"
DASHBOARD = MONITORING / "coordreg-dashboard.json"

_TOKEN = re.compile(
    r"""(?P<skip>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`|\{[^}]*\}|\[[^\]]*\]|\$\{?\w+\}?)
      |(?P<duration>\d+(?:ms|[smhdwy])(?:\d+(?:ms|[smhdwy]))*(?![A-Za-z0-9_:]))
      |(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)
      |(?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
      |(?P<other>\S)""",
    re.VERBOSE,
)
_GROUPING = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
_KEYWORDS = frozenset({"and", "or", "unless", "offset", "bool", "inf", "nan", "atan2", "start", "end"})
# Series Prometheus makes itself rather than scrapes.
SYNTHETIC = frozenset(
    {"up", "scrape_duration_seconds", "scrape_samples_scraped", "ALERTS", "ALERTS_FOR_STATE"}
)


def metric_names(expr: str) -> set[str]:
    tokens = [(m.lastgroup, m.group()) for m in _TOKEN.finditer(expr)]
    names: set[str] = set()
    index = 0
    while index < len(tokens):
        kind, text = tokens[index]
        following = tokens[index + 1][1] if index + 1 < len(tokens) else ""
        if kind == "name" and text.lower() in _GROUPING:
            if following == "(":  # the label list: skip to its closing parenthesis
                index += 2
                while index < len(tokens) and tokens[index][1] != ")":
                    index += 1
        elif (
            kind == "name"
            and following != "("
            # An aggregation whose grouping comes first: `max by (job) (...)`.
            and following.lower() not in ("by", "without")
            and text.lower() not in _KEYWORDS
        ):
            names.add(text)
        index += 1
    return names


def rule_expressions() -> Iterator[tuple[str, str]]:
    """(alert name, expression) of every rule in the PrometheusRule."""
    document = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    for group in document["spec"]["groups"]:
        for rule in group["rules"]:
            yield rule.get("alert") or rule["record"], str(rule["expr"])


def dashboard_expressions() -> Iterator[tuple[str, str]]:
    """(panel title, expression) of every query in the dashboard, and of its variables."""
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))

    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for item in items:
            yield item
            yield from panels(item.get("panels", []))

    for panel in panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            text = query["query"] if isinstance(query, dict) else query
            inner = re.fullmatch(r"label_values\((.*),\s*\w+\)", text)
            yield f"${variable['name']}", inner[1] if inner else text


def referenced_metrics() -> dict[str, set[str]]:
    """Metric name -> where it is used ("rule X", "panel Y"), synthetic series left out."""
    used: dict[str, set[str]] = {}
    for source, expressions in (("rule", rule_expressions()), ("panel", dashboard_expressions())):
        for where, expr in expressions:
            for name in metric_names(expr) - SYNTHETIC:
                used.setdefault(name, set()).add(f"{source} {where}")
    return used


def rules_file_text() -> str:
    """The PrometheusRule's spec as a plain Prometheus rules file (what `yq '.spec'` prints)."""
    document = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return str(yaml.safe_dump(document["spec"], sort_keys=False, allow_unicode=True))
