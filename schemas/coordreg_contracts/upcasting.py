"""Upcasters: bring an event payload written by an older schema version to the current one.

Consumers and projections read any version ever published; only the newest model is
validated. A payload without `schema_version` is version 0 (the pre-release format,
in which an agreement's parties were called `signatories` and carried no role).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Payload = dict[str, Any]


def _agreement_signed_v0_to_v1(data: Payload) -> Payload:
    upgraded = {key: value for key, value in data.items() if key != "signatories"}
    if "signatories" in data and "parties" not in data:
        parties = []
        for index, party in enumerate(data["signatories"]):
            parties.append({**party, "role": party.get("role", "lead" if index == 0 else "member")})
        upgraded["parties"] = parties
    upgraded["schema_version"] = 1
    return upgraded


def _stamp_v1(data: Payload) -> Payload:
    return {**data, "schema_version": 1}


UPCASTERS: dict[tuple[str, int], Callable[[Payload], Payload]] = {
    ("AgreementSigned", 0): _agreement_signed_v0_to_v1,
    ("AgreementAmended", 0): _stamp_v1,
    ("ProgressReported", 0): _stamp_v1,
    ("TermClosed", 0): _stamp_v1,
}


def upcast(event_name: str, data: Payload) -> Payload:
    version = int(data.get("schema_version", 0))
    while (event_name, version) in UPCASTERS:
        data = UPCASTERS[(event_name, version)](data)
        version = int(data["schema_version"])
    return data
