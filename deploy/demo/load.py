"""Loads the demo agreements (from the five articles), their lives and the 2025 successions of
their parties through the public API.

Safe to run again: an agreement already signed (409 with `existing_agreement_id`) is
reused, and the lifecycle of an agreement is replayed only when it was signed by this run; a
party already in the directory (409) is kept, and a succession already recorded (409) is kept
once the directory shows it names the same successor. The registry carries successions into the
agreements asynchronously (decision 17), so the loader waits until no transfer is pending: what
it returns is the demo as of today, and `last_position` covers the transfers too.
Calls carry a bearer token: the caller's `headers`, or else a demo token minted with the
development key (every demo party, every scope; see `deploy.tokens`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx

from deploy.tokens import demo_token

HERE = Path(__file__).parent
PATHS = {"amend": "amendments", "report": "progress-reports", "close": "close"}


def demo_agreements() -> list[dict[str, Any]]:
    """The signings: `{"key": ..., "body": <POST /v1/agreements body>}`, in signing order."""
    agreements: list[dict[str, Any]] = json.loads((HERE / "agreements.json").read_text(encoding="utf-8"))
    return agreements


def demo_lifecycle() -> list[dict[str, Any]]:
    """The later commands: `{"agreement": key, "action": amend|report|close, "body": ...}`, in order."""
    lifecycle: list[dict[str, Any]] = json.loads((HERE / "lifecycle.json").read_text(encoding="utf-8"))
    return lifecycle


def demo_parties() -> list[dict[str, Any]]:
    """The successors to register first: `POST /v1/parties` bodies (deploy/demo/successions.json)."""
    parties: list[dict[str, Any]] = _successions_file()["parties"]
    return parties


def demo_successions() -> list[dict[str, Any]]:
    """`{"party_id": <the body that ceased>, "body": <POST /v1/parties/{id}/succession body>}`,
    after every signing and every lifecycle command."""
    successions: list[dict[str, Any]] = _successions_file()["successions"]
    return successions


def _successions_file() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((HERE / "successions.json").read_text(encoding="utf-8"))
    return data


def resolve(body: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
    """The body with each `"@key"` reference to another demo agreement replaced by its id."""
    resolved = dict(body)
    for field in ("parent_agreement_id", "successor_agreement_id"):
        value = resolved.get(field)
        if isinstance(value, str) and value.startswith("@"):
            resolved[field] = ids[value[1:]]
    return resolved


def load(base_url: str, headers: dict[str, str] | None = None, *, successions: bool = True) -> dict[str, Any]:
    """Everything, in order: the signings, their lifecycle, then (unless `successions` is False:
    the demo as it stood on 2024-12-30) the successor parties and the successions."""
    agreements, lifecycle = demo_agreements(), demo_lifecycle()
    ids: dict[str, str] = {}
    new: set[str] = set()
    last_position = 0
    if headers is None or not any(name.lower() == "authorization" for name in headers):
        headers = {**(headers or {}), "Authorization": f"Bearer {demo_token()}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
        for item in agreements:
            response = client.post("/v1/agreements", json=resolve(item["body"], ids))
            if response.status_code == 201:
                ids[item["key"]] = response.json()["agreement_id"]
                last_position = max(last_position, response.json()["position"])
                new.add(item["key"])
            elif response.status_code == 409 and "existing_agreement_id" in response.json():
                ids[item["key"]] = response.json()["existing_agreement_id"]
            else:
                raise RuntimeError(
                    f"demo agreement {item['key']} refused: {response.status_code} {response.text}"
                )
        applied = 0
        for entry in lifecycle:
            if entry["agreement"] not in new:
                continue
            agreement_id = ids[entry["agreement"]]
            url = f"/v1/agreements/{agreement_id}/{PATHS[entry['action']]}"
            response = client.post(url, json=resolve(entry["body"], ids))
            if response.status_code not in (200, 201):
                raise RuntimeError(f"demo {entry['action']} on {entry['agreement']} refused: {response.text}")
            last_position = max(last_position, response.json()["position"])
            applied += 1
        registered = recorded = 0
        if successions:
            registered, recorded, position = _reorganise(client, list(ids.values()))
            last_position = max(last_position, position)
    return {
        "agreements": ids,
        "signed_now": len(new),
        "lifecycle_applied": applied,
        "parties_registered_now": registered,
        "successions_recorded_now": recorded,
        "last_position": last_position,
    }


def _reorganise(client: httpx.Client, agreement_ids: list[str]) -> tuple[int, int, int]:
    """Registers the successors, records the successions and waits for their transfers: the
    parties registered and the successions recorded by this run, and the last position."""
    registered = recorded = last_position = 0
    for body in demo_parties():
        response = client.post("/v1/parties", json=body)
        if response.status_code == 201:
            registered += 1
            last_position = max(last_position, response.json()["position"])
        elif response.status_code != 409:
            raise RuntimeError(
                f"demo party {body['party_id']} refused: {response.status_code} {response.text}"
            )
    successions = demo_successions()
    for item in successions:
        party_id, body = item["party_id"], item["body"]
        response = client.post(f"/v1/parties/{party_id}/succession", json=body)
        if response.status_code == 200:
            recorded += 1
            last_position = max(last_position, response.json()["position"])
        elif response.status_code == 409:
            _check_recorded(client, party_id, body)
        else:
            raise RuntimeError(
                f"demo succession of {party_id} refused: {response.status_code} {response.text}"
            )
    if _wait_for_transfers(client, [item["party_id"] for item in successions]) or recorded:
        last_position = max(last_position, _last_position(client, agreement_ids))
    return registered, recorded, last_position


def _check_recorded(client: httpx.Client, party_id: str, body: dict[str, Any]) -> None:
    """A 409 is "already done" only if the directory holds this very succession: a party that
    ceased otherwise (another successor, another date) would make the demo say what it does not."""
    response = client.get(f"/v1/parties/{party_id}")
    response.raise_for_status()
    held = response.json()["succession"] or {}
    wanted = {k: body[k] for k in ("effective_on", "legal_basis", "successor_party_id")}
    if {k: held.get(k) for k in wanted} != wanted:
        raise RuntimeError(f"demo succession of {party_id} conflicts with the directory's: {held}")


def _wait_for_transfers(client: httpx.Client, party_ids: list[str], timeout: float = 60) -> bool:
    """Until every party's succession is carried into its agreements; whether any was pending."""
    deadline = time.monotonic() + timeout
    pending_seen = False
    for party_id in party_ids:
        while True:
            response = client.get(f"/v1/parties/{party_id}")
            response.raise_for_status()
            if not response.json()["transfers_pending"]:
                break
            pending_seen = True
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the registry did not carry the succession of {party_id} within {timeout:.0f}s"
                )
            time.sleep(0.05)
    return pending_seen


def _last_position(client: httpx.Client, agreement_ids: Iterable[str]) -> int:
    """The transfers are appended by the registry, not answered to the loader: read them back."""
    last = 0
    for agreement_id in agreement_ids:
        response = client.get(f"/v1/agreements/{agreement_id}/events")
        response.raise_for_status()
        last = max([last, *(envelope["position"] or 0 for envelope in response.json()["events"])])
    return last
