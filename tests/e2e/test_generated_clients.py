"""Clients generated from the OpenAPI documents with openapi-generator, compiled, and run against a
live stack (docs/CLIENTS.md).

For both services, a Java client (`java`, library `native`) and a TypeScript client
(`typescript-fetch`) are generated from the documents the applications serve, into a temporary
folder (nothing generated is committed), compiled (Maven; `tsc` from clients/package-lock.json),
and each language's program (clients/java/life, clients/ts/life.ts) runs a whole agreement life
through them on real servers: sign, amend with If-Match from the ETag, report progress, close,
then the lead party's obligations, its history and the overdue report. Two refused commands
(a stale If-Match, a period after the term) must come back as the generated error type with the
body read into the generated Problem model. The programs print one JSON line per step; the test
checks those lines and reads the effects back itself over HTTP.

The first run fetches the generator, Maven's plugins and the clients' jars into `.cache/maven`
and the TypeScript compiler into `.cache/clients-npm`, each checked against a committed hash;
later runs reuse them.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support import clients
from tests.support.builders import report_body, sign_body
from tests.support.stack import Stack

LEAD, MEMBER = "mttq-hoa-binh", "hctd-hoa-binh"
STEPS = [
    "sign",
    "amend",
    "amend_stale",
    "report",
    "report_outside_term",
    "overdue_before_close",
    "close",
    "obligations",
    "history",
    "overdue_after_close",
]


@dataclass
class Built:
    generated: Path
    digest: dict[str, str]  # the generated trees as written, before anything was compiled in them
    java: clients.JavaProgram
    node_program: Path
    seconds: dict[str, float] = field(default_factory=dict)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = tmp_path_factory.mktemp("generated-clients")
    seconds: dict[str, float] = {}
    started = time.monotonic()
    jar = clients.ensure_generator()
    seconds["fetch generator"] = time.monotonic() - started
    started = time.monotonic()
    generated = clients.generate_all(jar, clients.openapi_documents(root / "documents"), root / "generated")
    digest = clients.tree_digest(generated)
    seconds["generate"] = time.monotonic() - started
    started = time.monotonic()
    java = clients.build_java(generated)
    seconds["compile java"] = time.monotonic() - started
    started = time.monotonic()
    node_program = clients.build_typescript(generated, clients.ensure_typescript())
    seconds["compile typescript"] = time.monotonic() - started
    print("generated clients, seconds:", {k: round(v, 1) for k, v in seconds.items()})
    return Built(generated, digest, java, node_program, seconds)


def test_generating_again_gives_the_same_files(built: Built, tmp_path: Path) -> None:
    jar = clients.ensure_generator()
    again = clients.generate_all(
        jar, clients.openapi_documents(tmp_path / "documents"), tmp_path / "generated"
    )
    assert clients.tree_digest(again) == built.digest
    # Both languages for both services, with the models the life uses.
    for path in (
        "java/registry/src/main/java/vn/gov/coordreg/registry/model/Problem.java",
        "java/registry/src/main/java/vn/gov/coordreg/registry/ApiException.java",
        "java/projections/src/main/java/vn/gov/coordreg/projections/model/PartyObligations.java",
        "ts/registry/models/Problem.ts",
        "ts/projections/models/OverdueReport.ts",
    ):
        assert path in built.digest, path


async def _run(command: list[str]) -> list[dict[str, Any]]:
    # The servers run on this event loop: the program must not block it.
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=180)
    assert process.returncode == 0, stderr.decode(errors="replace")[-4000:]
    return [json.loads(line) for line in stdout.decode().splitlines() if line.strip()]


async def _refusal_types(stack: Stack) -> tuple[str, str]:
    """The problem types of a stale If-Match and of a period after the term, read over HTTP."""
    signed = await stack.sign(sign_body())
    path = f"/v1/agreements/{signed['agreement_id']}"
    reported = await stack.registry.post(f"{path}/progress-reports", json=report_body(party_id=LEAD))
    assert reported.status_code == 201, reported.text
    amendment = {
        "document_number": "12/QĐ-MTTQ-BTT",
        "reason": "Bổ sung nội dung chuyển đổi số",
        "effective_on": "2024-03-01",
        "changes": [{"op": "revise_obligation", "obligation_id": "nhan-dao", "cadence": "quarterly"}],
    }
    stale = await stack.registry.post(f"{path}/amendments", json=amendment, headers={"If-Match": '"1"'})
    late = await stack.registry.post(
        f"{path}/progress-reports", json=report_body(party_id=LEAD, period="2031")
    )
    assert (stale.status_code, late.status_code) == (412, 422), (stale.text, late.text)
    for response in (stale, late):
        assert response.headers["content-type"].startswith("application/problem+json"), response.text
    return stale.json()["type"], late.json()["type"]


async def _check_life(stack: Stack, lines: list[dict[str, Any]]) -> None:
    assert [line["step"] for line in lines] == STEPS, lines
    by = {line["step"]: line for line in lines}
    agreement_id = by["sign"]["agreement_id"]
    assert by["sign"] | {"agreement_id": None, "position": None} == by["sign"] | {
        "agreement_id": None,
        "position": None,
        "version": 1,
        "status": "active",
        "etag": '"1"',
        "http_status": 201,
    }
    assert by["amend"]["if_match"] == '"1"' and by["amend"]["etag"] == '"2"' and by["amend"]["version"] == 2
    assert by["report"]["version"] == 3 and by["report"]["status"] == "active"
    assert by["close"]["version"] == 4 and by["close"]["status"] == "closed"
    for name in ("amend", "report", "close"):
        assert by[name]["agreement_id"] == agreement_id
    positions = [by[name]["position"] for name in ("sign", "amend", "report", "close")]
    assert positions == sorted(set(positions)), positions

    # The refusals: the generated error type, the problem's `type` read from the generated model,
    # the same as this test reads from the same refusals over HTTP (on an agreement of its own).
    stale, outside = by["amend_stale"], by["report_outside_term"]
    assert stale["http_status"] == stale["problem_status"] == 412, stale
    assert outside["http_status"] == outside["problem_status"] == 422, outside
    assert ["body", "period"] in outside["error_locations"], outside
    assert (stale["problem_type"], outside["problem_type"]) == await _refusal_types(stack)
    path = f"/v1/agreements/{agreement_id}"

    # What the registry holds: four events, none from the refusals.
    state = await stack.registry.get(path)
    assert state.status_code == 200 and state.headers["etag"] == '"4"' and state.json()["status"] == "closed"
    events = (await stack.registry.get(f"{path}/events")).json()["events"]
    assert [(e["sequence"], e["type"]) for e in events] == [
        (1, "vn.gov.coordination.AgreementSigned.v1"),
        (2, "vn.gov.coordination.AgreementAmended.v1"),
        (3, "vn.gov.coordination.ProgressReported.v1"),
        (4, "vn.gov.coordination.TermClosed.v1"),
    ]
    assert [e["position"] for e in events] == positions

    # The reads, as the program saw them and as this test reads them.
    assert by["overdue_before_close"]["period"] == "2024"
    assert [(o["obligation_id"], o["lead_party_id"]) for o in by["overdue_before_close"]["obligations"]] == [
        ("chuyen-doi-so", MEMBER)
    ]
    assert by["overdue_after_close"]["obligations"] == []
    last = positions[-1]
    overdue = await stack.projections.get(
        "/v1/reports/overdue", params={"period": "2024", "min_position": last}
    )
    assert [o for o in overdue.json()["obligations"] if o["agreement_id"] == agreement_id] == []

    held = await stack.projections.get(
        f"/v1/parties/{LEAD}/obligations", params={"status": "all", "min_position": last}
    )
    mine = [o for o in held.json()["obligations"] if o["agreement_id"] == agreement_id]
    assert by["obligations"]["party_id"] == LEAD
    assert by["obligations"]["obligations"] == [
        {k: o[k] for k in ("obligation_id", "role", "status", "cadence", "latest_report")} for o in mine
    ]
    assert {(o["obligation_id"], o["role"], o["status"]) for o in mine} == {
        ("nhan-dao", "lead", "closed"),
        ("chuyen-doi-so", "supporter", "closed"),
    }
    [reported] = [o for o in by["obligations"]["obligations"] if o["obligation_id"] == "nhan-dao"]
    assert reported["latest_report"] == {
        "period": "2024",
        "status": "in_progress",
        "completion_percent": 60,
        "reported_on": "2024-12-20",
    }

    history = await stack.projections.get(f"/v1/parties/{LEAD}/history", params={"min_position": last})
    lines_read = [
        {k: e[k] for k in ("type", "sequence", "position")}
        for e in history.json()["events"]
        if e["agreement_id"] == agreement_id
    ]
    assert by["history"]["events"] == lines_read
    assert {e["sequence"] for e in lines_read} >= {1, 3}, lines_read  # signed by it, reported by it


def _without_models(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k != "model"}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    stripped: list[dict[str, Any]] = strip(lines)
    return stripped


async def test_the_java_client_runs_a_whole_life(stack: Stack, built: Built) -> None:
    document_number = f"{uuid.uuid4().hex[:12]}/CTPH-MTTQ-HCTĐ"
    lines = await _run(
        built.java.command(stack.registry_url, stack.projections_url, stack.token(), document_number)
    )
    # Typed results: each line names the generated class the value came in.
    models = {line["step"]: line.get("model") for line in lines}
    assert models == {
        "sign": "AgreementCommandResult",
        "amend": "AgreementCommandResult",
        "amend_stale": "Problem",
        "report": "AgreementCommandResult",
        "report_outside_term": "Problem",
        "overdue_before_close": "OverdueReport",
        "close": "AgreementCommandResult",
        "obligations": "PartyObligations",
        "history": "PartyHistory",
        "overdue_after_close": "OverdueReport",
    }
    assert {line["error"] for line in lines if "error" in line} == {"vn.gov.coordreg.registry.ApiException"}
    assert {o["model"] for o in lines[STEPS.index("obligations")]["obligations"]} == {"HeldObligation"}
    await _check_life(stack, _without_models(lines))


async def test_the_typescript_client_runs_a_whole_life(stack: Stack, built: Built) -> None:
    document_number = f"{uuid.uuid4().hex[:12]}/CTPH-MTTQ-HCTĐ"
    lines = await _run(
        [
            "node",
            str(built.node_program),
            stack.registry_url,
            stack.projections_url,
            stack.token(),
            document_number,
        ]
    )
    assert {line["error"] for line in lines if "error" in line} == {"ResponseError"}
    await _check_life(stack, lines)
