"""Loads the demo agreements (from the five articles) and their lives through the public API.

Safe to run again: an agreement already signed (409 with `existing_agreement_id`) is
reused, and the lifecycle of an agreement is replayed only when it was signed by this run.
Calls carry a bearer token: the caller's `headers`, or else a demo token minted with the
development key (every demo party, every scope; see `deploy.tokens`).
"""

from __future__ import annotations

import json
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


def resolve(body: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
    """The body with each `"@key"` reference to another demo agreement replaced by its id."""
    resolved = dict(body)
    for field in ("parent_agreement_id", "successor_agreement_id"):
        value = resolved.get(field)
        if isinstance(value, str) and value.startswith("@"):
            resolved[field] = ids[value[1:]]
    return resolved


def load(base_url: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
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
    return {
        "agreements": ids,
        "signed_now": len(new),
        "lifecycle_applied": applied,
        "last_position": last_position,
    }
