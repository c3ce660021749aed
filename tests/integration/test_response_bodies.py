"""What existing clients get, byte for byte: the answers of the main routes of both services on
the demo data, against a golden file recorded from the routes as they were before their answers
were typed (issue 21: response models encode them now).

The demo is loaded through the command routes here (each command's answer is recorded too:
status, `Location`, `ETag` and body), then the reads of both services are recorded. What varies
from run to run is replaced before the comparison, nothing else: ids (UUIDs, in the order they
first appear), instants, and base64 hashes and signatures (they cover those ids and instants).
Set `COORDREG_WRITE_GOLDEN=1` to record the file again (only for a deliberate change of the
contract, which docs/CONTRACT.md then states).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path
from typing import Any

import httpx

from deploy.demo.load import PATHS, demo_agreements, demo_lifecycle, demo_parties, demo_successions, resolve
from deploy.tokens import demo_token
from tests.support.log import integrate
from tests.support.stack import Stack

GOLDEN = Path(__file__).parent / "golden" / "response_bodies.json"
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_INSTANT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)")
_BASE64 = re.compile(r"[A-Za-z0-9+/]{40,}={0,2}")
# The demo's and these requests' text holds no such runs; hashes, keys and signatures do.


class Recorder:
    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self._ids: dict[str, str] = {}

    def _normal(self, text: str) -> str:
        def named(match: re.Match[str]) -> str:
            return self._ids.setdefault(match[0], f"<id-{len(self._ids) + 1}>")

        text = _UUID.sub(named, text)
        text = _INSTANT.sub("<instant>", text)
        return _BASE64.sub("<base64>", text)

    @staticmethod
    def _sorted(text: str, member: str | None) -> str:
        if member is None:
            return text
        body = json.loads(text)
        body[member].sort(key=lambda item: json.dumps(item, ensure_ascii=False))
        return json.dumps(body, ensure_ascii=False, separators=(",", ":"))

    def record(self, label: str, response: httpx.Response, unordered: str | None = None) -> httpx.Response:
        """`unordered`: a list member whose order among equal sort keys is the order of random
        agreement ids (two agreements with one document number): compared sorted."""
        headers = {
            name: self._normal(response.headers[name])
            for name in ("location", "etag", "content-type", "idempotent-replayed")
            if name in response.headers
        }
        self.entries.append(
            {
                "request": self._normal(label),
                "status": response.status_code,
                "headers": headers,
                "body": self._sorted(self._normal(response.content.decode("utf-8")), unordered),
            }
        )
        return response


async def load_demo(rec: Recorder, reg: httpx.AsyncClient) -> dict[str, str]:
    """The demo, as `deploy/demo/load.py` loads it, each command's answer recorded."""
    ids: dict[str, str] = {}
    for item in demo_agreements():
        answer = rec.record(
            f"sign {item['key']}", await reg.post("/v1/agreements", json=resolve(item["body"], ids))
        )
        assert answer.status_code == 201, answer.text
        ids[item["key"]] = answer.json()["agreement_id"]
    for entry in demo_lifecycle():
        path = f"/v1/agreements/{ids[entry['agreement']]}/{PATHS[entry['action']]}"
        answer = rec.record(
            f"{entry['action']} {entry['agreement']}", await reg.post(path, json=resolve(entry["body"], ids))
        )
        assert answer.status_code in (200, 201), answer.text
    for body in demo_parties():
        answer = rec.record(f"register {body['party_id']}", await reg.post("/v1/parties", json=body))
        assert answer.status_code == 201, answer.text
    # One at a time, each carried into its agreements before the next: positions are then the
    # same in every run (the process manager appends the transfers concurrently otherwise).
    for item in demo_successions():
        path = f"/v1/parties/{item['party_id']}/succession"
        answer = rec.record(f"succession {item['party_id']}", await reg.post(path, json=item["body"]))
        assert answer.status_code == 200, answer.text
        for _ in range(600):
            if not (await reg.get(f"/v1/parties/{item['party_id']}")).json()["transfers_pending"]:
                break
            await asyncio.sleep(0.05)
    return ids


async def settled(stack: Stack) -> None:
    """Until the process manager has carried every succession (its appends race with ours)."""
    for _ in range(600):
        if not await stack.pool.fetchval("SELECT count(*) FROM registry.succession_queue"):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("successions still queued")


async def record_everything(stack: Stack) -> list[dict[str, Any]]:
    rec = Recorder()
    # The demo's token: every demo party, every scope (the stack's acts for the tests' parties).
    demo = {"Authorization": f"Bearer {demo_token()}"}
    async with httpx.AsyncClient(base_url=stack.registry_url, headers=demo, timeout=30) as reg:
        return await _record(stack, rec, reg, stack.projections)


async def _record(
    stack: Stack, rec: Recorder, reg: httpx.AsyncClient, proj: httpx.AsyncClient
) -> list[dict[str, Any]]:
    ids = await load_demo(rec, reg)
    first = next(iter(ids))
    first_body = demo_agreements()[0]["body"]
    # The same signing again: a 409 naming the agreement; with a key, twice: the second a replay.
    rec.record("sign again", await reg.post("/v1/agreements", json=first_body))
    keyed = {**first_body, "document_number": "1/CTPH-GOLDEN"}
    for attempt in ("first", "replayed"):
        sent = await reg.post("/v1/agreements", json=keyed, headers={"Idempotency-Key": "golden-sign"})
        rec.record(f"sign with a key ({attempt})", sent)
    golden_id = sent.json()["agreement_id"]
    await settled(stack)  # its parties that ceased: the process manager carries them in
    report = {
        "obligation_id": first_body["obligations"][0]["obligation_id"],
        "party_id": first_body["obligations"][0]["lead_party_id"],
        "period": "2020",
        "status": "in_progress",
        "completion_percent": 50,
        "summary": 'Báo cáo "giữa kỳ" — tiến độ 50%',
        "reported_on": "2020-06-30",
    }
    for attempt in ("first", "replayed"):
        sent = await reg.post(
            f"/v1/agreements/{golden_id}/progress-reports",
            json=report,
            headers={"Idempotency-Key": "golden-report"},
        )
        rec.record(f"report with a key ({attempt})", sent)
    rec.record(
        "report refused, with a key (first)",
        await reg.post(
            f"/v1/agreements/{golden_id}/progress-reports",
            json={**report, "obligation_id": "no-such-obligation"},
            headers={"Idempotency-Key": "golden-refused"},
        ),
    )
    rec.record(
        "report refused, with a key (replayed)",
        await reg.post(
            f"/v1/agreements/{golden_id}/progress-reports",
            json={**report, "obligation_id": "no-such-obligation"},
            headers={"Idempotency-Key": "golden-refused"},
        ),
    )
    rename = {
        "name": "Sở Nội vụ tỉnh Phú Thọ (mới)",
        "effective_on": "2025-08-01",
        "legal_basis": "1/QĐ-UBND",
    }
    renamed_party = demo_parties()[0]["party_id"]
    rec.record("rename", await reg.post(f"/v1/parties/{renamed_party}/rename", json=rename))
    last = 0
    for agreement_id in [*ids.values(), golden_id]:
        events = (await reg.get(f"/v1/agreements/{agreement_id}/events")).json()["events"]
        last = max(last, *(envelope["position"] for envelope in events))
    events = (await reg.get(f"/v1/parties/{renamed_party}/events")).json()["events"]
    last = max(last, events[-1]["position"])
    await stack.wait_for_position(last)

    # The registry's reads.
    for key, agreement_id in [*ids.items(), ("golden", golden_id)]:
        rec.record(f"registry agreement {key}", await reg.get(f"/v1/agreements/{agreement_id}"))
        rec.record(f"registry events {key}", await reg.get(f"/v1/agreements/{agreement_id}/events"))
    rec.record(
        "registry events, a page", await reg.get(f"/v1/agreements/{ids[first]}/events", params={"limit": 2})
    )
    rec.record(
        "registry events, the next page",
        await reg.get(f"/v1/agreements/{ids[first]}/events", params={"limit": 2, "cursor": "2"}),
    )
    rec.record("registry agreement, missing", await reg.get("/v1/agreements/missing"))
    parties = sorted(
        {p["party_id"] for item in demo_agreements() for p in item["body"]["parties"]}
        | {body["party_id"] for body in demo_parties()}
    )
    for party_id in parties:
        rec.record(f"registry party {party_id}", await reg.get(f"/v1/parties/{party_id}"))
    for party_id in (renamed_party, demo_successions()[0]["party_id"]):
        rec.record(f"registry party events {party_id}", await reg.get(f"/v1/parties/{party_id}/events"))
    rec.record("registry event keys", await reg.get("/v1/event-keys"))
    rec.record("log keys", await reg.get("/v1/log/keys"))
    rec.record("log checkpoint, none yet", await reg.get("/v1/log/checkpoint"))
    # The log, its tree integrated in process (as the relay's integrator does).
    events = await integrate(stack.pool)
    signed = await reg.post("/v1/log/checkpoints")
    rec.record("log sign a checkpoint", signed)
    rec.record("log checkpoint", await reg.get("/v1/log/checkpoint"))
    rec.record("log checkpoint of a size", await reg.get(f"/v1/log/checkpoints/{events}"))
    rec.record("log checkpoint, missing", await reg.get("/v1/log/checkpoints/1"))
    for position in (1, 2, events):
        inclusion = {"tree_size": events, "position": position}
        rec.record(f"log inclusion {position}", await reg.get("/v1/log/proofs/inclusion", params=inclusion))
    rec.record(
        "log consistency",
        await reg.get("/v1/log/proofs/consistency", params={"from": 3, "to": events}),
    )
    rec.record("log leaves", await reg.get("/v1/log/leaves", params={"start": 0, "end": 5}))
    rec.record("log proofs, bad request", await reg.get("/v1/log/proofs/inclusion", params={"tree_size": 1}))
    rec.record(
        "log consistency, bad request",
        await reg.get("/v1/log/proofs/consistency", params={"from": 3, "to": 2}),
    )
    rec.record("log leaves, bad range", await reg.get("/v1/log/leaves", params={"start": 3, "end": 2}))

    # The projections' reads.
    rec.record("projections agreements", await proj.get("/v1/agreements", params={"limit": 500}))
    rec.record("projections agreements, a page", await proj.get("/v1/agreements", params={"limit": 2}))
    rec.record(
        "projections agreements, closed", await proj.get("/v1/agreements", params={"status": "closed"})
    )
    rec.record(
        "projections agreements, Phú Thọ", await proj.get("/v1/agreements", params={"locality": "Phú Thọ"})
    )
    rec.record("projections search", await proj.get("/v1/agreements", params={"q": "chuyen doi so"}))
    rec.record(
        "projections search, a page", await proj.get("/v1/agreements", params={"q": "hoa binh", "limit": 1})
    )
    for key, agreement_id in [*ids.items(), ("golden", golden_id)]:
        rec.record(f"projections agreement {key}", await proj.get(f"/v1/agreements/{agreement_id}"))
    rec.record("projections agreement, missing", await proj.get("/v1/agreements/missing"))
    for party_id in parties:
        rec.record(f"projections party {party_id}", await proj.get(f"/v1/parties/{party_id}"))
        for status in ("active", "all", "transferred"):
            rec.record(
                f"projections obligations {party_id} {status}",
                await proj.get(f"/v1/parties/{party_id}/obligations", params={"status": status}),
                "obligations",
            )
        rec.record(f"projections history {party_id}", await proj.get(f"/v1/parties/{party_id}/history"))
    # A party whose obligations are all in one agreement: its pages are the same in every run.
    path = "/v1/parties/hctd-phu-tho/obligations"
    page = await proj.get(path, params={"status": "all", "limit": 2})
    rec.record("projections obligations, a page", page)
    cursor = page.json()["next_cursor"]
    assert cursor is not None
    rec.record(
        "projections obligations, the next page",
        await proj.get(path, params={"status": "all", "limit": 2, "cursor": cursor}),
    )
    for period in ("2024", "2024-Q4", "2025-06"):
        rec.record(
            f"projections overdue {period}",
            await proj.get("/v1/reports/overdue", params={"period": period}),
            "obligations",
        )
    rec.record(
        "projections overdue, a page",
        await proj.get("/v1/reports/overdue", params={"period": "2024", "limit": 1}),
    )
    rec.record("projections party, missing", await proj.get("/v1/parties/nobody"))
    rec.record("projections bad cursor", await proj.get("/v1/agreements", params={"cursor": "x"}))
    return rec.entries


async def test_the_main_routes_answer_as_they_did(stack: Stack) -> None:
    entries = await record_everything(stack)
    text = json.dumps(entries, ensure_ascii=False, indent=1) + "\n"
    if os.environ.get("COORDREG_WRITE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(text, encoding="utf-8")
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert len(entries) == len(golden)
    for got, want in zip(entries, golden, strict=True):
        assert got == want, got["request"]
