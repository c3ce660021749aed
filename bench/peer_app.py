"""Figure 5's peer: the same agreement lives stored with the `eventsourcing` library on PostgreSQL.

Runs in its own virtualenv (`.local/bench/peer-venv`, made by bench/peer.py), not the
project's: `python bench/peer_app.py --commands N --clients C ...` prints one JSON line.

The aggregate holds what our decide() needs for the same commands: the signing's
document, parties and obligations; a report is accepted only for an existing obligation,
by its lead or a supporter, while the agreement is open (our domain checks more). Each
command loads the aggregate from its events (no snapshots, no cache: like our handler),
decides, and saves through the application (one transaction per save, the library's
optimistic concurrency and gap-free notification ids). The bodies are the very dicts the
HTTP load and our in-process run use (bench/workload.py). Threads give the concurrency:
eventsourcing's PostgreSQL recorder is synchronous (psycopg 3).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any
from uuid import UUID

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eventsourcing.application import Application  # type: ignore[import-not-found]
from eventsourcing.domain import Aggregate, event  # type: ignore[import-not-found]

from bench.workload import APPEND_LIFE, Lives


class Agreement(Aggregate):  # type: ignore[misc]
    @event("Signed")  # type: ignore[untyped-decorator]
    def __init__(
        self,
        document_number: str,
        kind: str,
        title: str,
        locality: str,
        signed_on: str,
        term: dict[str, str],
        parties: list[dict[str, Any]],
        legal_basis: list[dict[str, Any]],
        obligations: list[dict[str, Any]],
        parent_agreement_id: str | None,
    ) -> None:
        self.document_number = document_number
        self.kind = kind
        self.title = title
        self.locality = locality
        self.signed_on = signed_on
        self.term = term
        self.parties = {p["party_id"]: p for p in parties}
        self.legal_basis = legal_basis
        self.obligations = {o["obligation_id"]: o for o in obligations}
        self.parent_agreement_id = parent_agreement_id
        self.reports: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.closed = False

    def report_progress(self, body: dict[str, Any]) -> None:
        obligation = self.obligations.get(body["obligation_id"])
        if obligation is None:
            raise ValueError(f"no obligation {body['obligation_id']!r}")
        if body["party_id"] not in (obligation["lead_party_id"], *obligation["supporting_party_ids"]):
            raise ValueError(f"{body['party_id']!r} neither leads nor supports {body['obligation_id']!r}")
        if self.closed:
            raise ValueError("the agreement is closed")
        if body["reported_on"] < self.signed_on:
            raise ValueError("reported_on is before the signing")
        self._reported(**body)

    @event("ProgressReported")  # type: ignore[untyped-decorator]
    def _reported(
        self,
        obligation_id: str,
        party_id: str,
        period: str,
        status: str,
        completion_percent: int | None,
        summary: str | None,
        reported_on: str,
        evidence: list[dict[str, str]],
    ) -> None:
        self.reports[(obligation_id, party_id, period)] = {
            "status": status,
            "completion_percent": completion_percent,
            "summary": summary,
            "reported_on": reported_on,
            "evidence": evidence,
        }


class Registry(Application):  # type: ignore[misc]
    name = "BenchPeer"

    def sign(self, body: dict[str, Any]) -> UUID:
        parties = body["parties"]
        if len(parties) < 2 or sum(p["role"] == "lead" for p in parties) != 1:
            raise ValueError("two parties or more, exactly one lead")
        agreement = Agreement(**body)
        self.save(agreement)
        return agreement.id  # type: ignore[no-any-return]

    def report(self, agreement_id: UUID, body: dict[str, Any]) -> None:
        agreement: Agreement = self.repository.get(agreement_id)
        agreement.report_progress(body)
        self.save(agreement)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--commands", type=int, required=True)
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--pool", type=int, required=True)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", default="")
    parser.add_argument("--dbname", required=True)
    parser.add_argument("--schema", required=True)
    parser.add_argument("--tag", required=True)
    args = parser.parse_args()
    app = Registry(
        env={
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": args.dbname,
            "POSTGRES_HOST": args.host,
            "POSTGRES_PORT": args.port,
            "POSTGRES_USER": args.user,
            "POSTGRES_PASSWORD": args.password,
            "POSTGRES_SCHEMA": args.schema,
            "POSTGRES_POOL_SIZE": str(args.pool),
            "POSTGRES_MAX_OVERFLOW": "0",
            "CREATE_TABLE": "y",
        }
    )
    per_client = args.commands // args.clients
    latencies: list[list[float]] = [[] for _ in range(args.clients)]
    errors: list[str] = []
    start = threading.Barrier(args.clients + 1)

    def client(number: int) -> None:
        lives = Lives(number, args.clients, args.tag, life=list(APPEND_LIFE), active=1)
        ids: dict[int, UUID] = {}
        start.wait()
        for _ in range(per_client):
            agreement = lives.next()
            body = lives.body(agreement)
            began = time.perf_counter()
            try:
                if agreement.next_kind == "sign":
                    ids[agreement.index] = app.sign(body)
                else:
                    app.report(ids[agreement.index], body)
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                agreement.step = len(agreement.life)
                continue
            latencies[number].append(time.perf_counter() - began)
            lives.advance(agreement, None)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(args.clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began
    flat = [v for per in latencies for v in per]
    print(
        json.dumps(
            {
                "library": "eventsourcing",
                "version": version("eventsourcing"),
                "psycopg": version("psycopg"),
                "commands": len(flat),
                "errors": len(errors),
                "first_error": errors[0] if errors else None,
                "seconds": round(seconds, 3),
                "per_second": round(len(flat) / seconds, 1) if seconds else 0.0,
                "latency_ms": {
                    "p50": round(1000 * percentile(flat, 50), 2),
                    "p99": round(1000 * percentile(flat, 99), 2),
                },
                "clients": args.clients,
                "pool_size": args.pool,
            }
        )
    )


if __name__ == "__main__":
    main()
