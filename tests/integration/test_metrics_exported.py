"""Every metric the alert rules and the Grafana dashboard ask for is exported by the running
processes: the registry (two worker processes on one socket), the relay, the projections API and
a projection worker, each started as in production (`python -m ...`) on the real PostgreSQL
and Kafka, scraped after a command, an error and its projection. A misspelt name fails here."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client.parser import text_string_to_metric_families

from deploy.local.processes import free_port
from deploy.tokens import mint
from services.common.auth import ALL_SCOPES
from services.transparency import note
from services.transparency.log import DEV_LOG_VERIFIER_KEY
from tests.faults.harness import COMPONENTS, STARTED_WITHIN, Env, Service
from tests.support.builders import sign_body
from tests.support.kafka import Brokers
from tests.support.promql import referenced_metrics
from tests.support.stack import TEST_CLIENT, TEST_PARTIES


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Sample name (with _total, _bucket, ... as PromQL sees it) -> its labelled values."""
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


@pytest.fixture
def processes(database_url: str, kafka: Brokers, topic: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """The four kinds of process; yields each one's /metrics URL."""
    env = Env(database_url, kafka, topic, tmp_path)
    ports = {name: free_port() for name in ("registry", "relay", "projections", "worker")}

    def start(name: str, module: str, extra: dict[str, str]) -> Service:
        service = Service(
            name, module, {**env.service_env(name, *COMPONENTS[module]), **extra}, tmp_path / f"{name}.log"
        )
        env.services.append(service)
        return service.start()

    # A witnessing policy whose one witness never answers: the relay runs its witness feeder,
    # which exports the witness metrics the alerts name.
    witness = note.CosignatureVerifier("witness.example", Ed25519PrivateKey.generate().public_key())
    policy = f"log {DEV_LOG_VERIFIER_KEY}\nwitness w {witness.key()} http://127.0.0.1:9\nquorum w\n"
    start(
        "registry",
        "services.registry.entrypoints.main",
        {"REGISTRY_PORT": str(ports["registry"]), "REGISTRY_WORKERS": "2", "REGISTRY_LOG_POLICY": policy},
    )
    start(
        "relay",
        "services.registry.entrypoints.relay_main",
        {
            "REGISTRY_RELAY_METRICS_PORT": str(ports["relay"]),
            "REGISTRY_RELAY_OUTBOX_CHECK_SECONDS": "0.2",
            "REGISTRY_LOG_POLICY": policy,
        },
    )
    start(
        "projections",
        "services.projections.entrypoints.main",
        {"PROJECTIONS_PORT": str(ports["projections"]), "PROJECTIONS_RUN_CONSUMER": "false"},
    )
    start(
        "worker",
        "services.projections.entrypoints.worker",
        {"PROJECTIONS_WORKER_METRICS_PORT": str(ports["worker"])},
    )
    try:
        yield {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    finally:
        env.stop_all()
        for service in env.services:
            print(f"--- {service.name} log (tail)")
            print("\n".join(service.log.read_text(errors="replace").splitlines()[-20:]))


async def wait_answering(client: httpx.AsyncClient, url: str, timeout: float = STARTED_WITHIN) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if (await client.get(url)).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{url} did not answer within {timeout}s"
        await asyncio.sleep(0.2)


async def test_every_metric_of_the_rules_and_the_dashboard_is_exported(processes: dict[str, str]) -> None:
    referenced = referenced_metrics()
    assert len(referenced) >= 15, referenced  # the parser found the manifests' queries
    headers = {"Authorization": f"Bearer {mint(TEST_CLIENT, ALL_SCOPES, TEST_PARTIES)}"}
    registry, projections = processes["registry"], processes["projections"]
    async with httpx.AsyncClient(timeout=30) as client:
        for url in (f"{registry}/readyz", f"{projections}/readyz"):
            await wait_answering(client, url)
        for name in ("relay", "worker"):
            await wait_answering(client, f"{processes[name]}/metrics")
        signed = await client.post(f"{registry}/v1/agreements", json=sign_body(), headers=headers)
        assert signed.status_code == 201, signed.text
        agreement_id = signed.json()["agreement_id"]
        missing = await client.get(f"{registry}/v1/agreements/no-such-agreement", headers=headers)
        assert missing.status_code == 404
        deadline = time.monotonic() + 90
        while True:
            projected = await client.get(f"{projections}/v1/agreements/{agreement_id}", headers=headers)
            if projected.status_code == 200:
                break
            assert time.monotonic() < deadline, "the signing was not projected"
            await asyncio.sleep(0.2)

        scraped: dict[str, dict[str, list[tuple[dict[str, str], float]]]] = {}
        deadline = time.monotonic() + 30
        while True:
            for name, url in processes.items():
                response = await client.get(f"{url}/metrics")
                assert response.status_code == 200
                scraped[name] = samples(response.text)
            exported = set().union(*scraped.values())
            absent = {name: sorted(used) for name, used in referenced.items() if name not in exported}
            # The lag gauges come with the worker's first update after its first fetch.
            if not absent or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        assert not absent, f"named by the monitoring manifests but exported by no process: {absent}"

        # Each process exports its own part.
        assert {"relay_is_leader", "relay_outbox_backlog", "relay_outbox_oldest_age_seconds"} <= set(
            scraped["relay"]
        )
        assert [value for _, value in scraped["relay"]["relay_is_leader"]] == [1.0]
        assert [value for _, value in scraped["relay"]["log_witness_feeder_is_leader"]] == [1.0]
        worker = scraped["worker"]
        assert {
            "projection_consumer_lag_records",
            "projection_lag_seconds",
            "projection_parked_events",
        } <= set(worker)
        assert {labels["partition"] for labels, _ in worker["projection_consumer_lag_records"]} == {
            str(p) for p in range(6)
        }, "the only worker of the group owns the 6 partitions"
        for name in ("registry", "projections"):
            assert "http_request_duration_seconds_bucket" in scraped[name]
        # The registry's two processes answer for both: every scrape sees the one signing.
        for _ in range(4):
            text = (await client.get(f"{registry}/metrics")).text
            signings = [
                value
                for labels, value in samples(text)["http_requests_total"]
                if labels["route"] == "/v1/agreements"
                and labels["method"] == "POST"
                and labels["status"] == "201"
            ]
            assert signings == [1.0], text
