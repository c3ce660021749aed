"""The console's proof of record (`/thoa-thuan/{id}/chung-minh`) on the real stack: registry and
projections on real PostgreSQL and Kafka, the transparency log integrated and a checkpoint signed
by the registry (the development log key, as `make run` has it), cosigned by a witness through
`coordreg-audit witness`, the console over real HTTP, Debian's chromium with JavaScript off.

An official opens the agreement page, follows its link to the proof page and sees each event in
the checkpoint verified by the console (against its pinned key), the witness's cosignature
verified (its key configured), and the event written after the checkpoint announced for the next
one. The page's `coordreg-audit prove` commands are then run as shown, in a folder holding the
checkpoint downloaded through the page's link: each must print PROVEN and exit 0. No request the
browser makes leaves 127.0.0.1; axe-core finds 0 WCAG 2.2 AA violations on the agreement and proof
pages. Screenshot: `.local/console-screenshots/proof.png`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import shlex
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.async_playwright import Axe
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from deploy.local.processes import free_port
from services.console.app import create_app
from services.console.settings import ConsoleSettings
from services.console.vietnamese import VIETNAM
from services.transparency import note
from services.transparency.log import DEV_LOG_VERIFIER_KEY
from tests.e2e.test_console import WCAG_22_AA, Recorder, agreement_body, recorded_context, shot, sign_in
from tests.e2e.test_docs_offline import stays_on_this_machine
from tests.support.audit_cli import AUDIT_COMMAND, run_audit
from tests.support.kafka import Brokers
from tests.support.log import integrate
from tests.support.stack import Stack, running_stack, serve, stop_server

WITNESS_PRIVATE = Ed25519PrivateKey.generate()
WITNESS = note.Signer("witness.test/so-tttt-phu-tho", WITNESS_PRIVATE)


@pytest.fixture
async def stack(database_url: str, kafka: Brokers, topic: str) -> AsyncIterator[Stack]:
    """The whole stack, the registry accepting the witness's cosignatures."""
    options = {"log_witness_keys": WITNESS.verifier().key()}
    async with running_stack(database_url, kafka, topic, registry_options=options) as running:
        yield running


@pytest.fixture
async def console(stack: Stack) -> AsyncIterator[str]:
    settings = ConsoleSettings(
        registry_url=stack.registry_url,
        projections_url=stack.projections_url,
        session_secret="t" * 40,
        log_witness_keys=WITNESS.verifier().key(),
    )
    assert settings.log_verifier.key() == DEV_LOG_VERIFIER_KEY  # the development default
    port = free_port()
    server, task = await serve(create_app(settings), port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await stop_server(server, task)


async def report(stack: Stack, agreement_id: str, period: str, today: dt.date) -> int:
    body = {
        "obligation_id": "chuyen-doi-so",
        "party_id": "snv-phu-tho",
        "period": period,
        "status": "completed",
        "completion_percent": 100,
        "reported_on": today.isoformat(),
    }
    headers = stack.bearer(stack.token(party_ids=["snv-phu-tho"]))
    response = await stack.registry.post(
        f"/v1/agreements/{agreement_id}/progress-reports", json=body, headers=headers
    )
    assert response.status_code == 201, response.text
    position: int = response.json()["position"]
    return position


async def run_shown(command: str, folder: Path, env: dict[str, str]) -> tuple[int, str]:
    """A command as the page shows it, in `folder`, the project's coordreg-audit standing in for
    the one on the PATH."""
    args = shlex.split(command)
    assert args[0] == "coordreg-audit", command
    process = await asyncio.create_subprocess_exec(
        str(AUDIT_COMMAND),
        *args[1:],
        cwd=folder,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    return await process.wait(), out.decode()


async def test_the_proof_of_record_page_verifies_and_its_commands_prove(
    stack: Stack, console: str, chromium: Any, tmp_path: Path
) -> None:
    today = dt.datetime.now(VIETNAM).date()
    signer = stack.bearer(stack.token(party_ids=["mttq-phu-tho"]))
    signed = (await stack.registry.post("/v1/agreements", json=agreement_body(today), headers=signer)).json()
    agreement_id = signed["agreement_id"]
    await report(stack, agreement_id, str(today.year - 1), today)
    # The tree taken in and a checkpoint signed (as the relay's integrator does every 10 s)...
    await integrate(stack.pool)
    signed_note = await stack.registry.post("/v1/log/checkpoints")
    assert signed_note.status_code == 201, signed_note.text
    size = note.Checkpoint.parse(note.parse_note(signed_note.text).body).size
    # ... cosigned by a witness with the audit tool, as a partner agency does.
    key_file = tmp_path / "witness.key"
    key_file.write_text(note.signer_key(WITNESS.name, WITNESS_PRIVATE) + "\n", encoding="utf-8")
    env = {"AUDIT_REGISTRY_URL": stack.registry_url, "AUDIT_REGISTRY_TOKEN": stack.token()}
    code, out, err = await run_audit(
        "witness", "--key", str(key_file), "--state", str(tmp_path / "state"),
        "--log-key", DEV_LOG_VERIFIER_KEY, env=env,
    )  # fmt: skip
    assert code == 0 and "accepted the cosignature: 201" in out, out + err
    # An event after the checkpoint: a leaf, in no checkpoint yet.
    latest = await report(stack, agreement_id, str(today.year), today)
    await integrate(stack.pool)
    await stack.wait_for_position(latest)

    recorder = Recorder()
    context = await chromium.new_context(
        java_script_enabled=False, locale="vi-VN", viewport={"width": 1280, "height": 900}
    )
    await recorder.attach(context)
    page = await context.new_page()
    await sign_in(page, console)
    await page.goto(f"{console}/thoa-thuan/{agreement_id}")
    await page.get_by_role("link", name="Xem chứng minh ghi nhận của thỏa thuận").click()
    assert page.url == f"{console}/thoa-thuan/{agreement_id}/chung-minh", page.url
    assert await page.get_attribute("html", "lang") == "vi"
    rows = page.locator("tr.event-proof")
    assert [await row.get_attribute("data-state") for row in await rows.all()] == [
        "verified",
        "verified",
        "pending",
    ]
    assert await page.get_attribute(".proof-summary", "data-state") == "partial"
    assert "Đã xác minh" in await rows.nth(0).inner_text()
    assert "điểm kiểm tra tiếp theo" in await rows.nth(2).inner_text()
    assert await page.inner_text(".tree-size") == str(size)
    facts = await page.inner_text("dl.checkpoint")
    assert "dev.coordreg.invalid/agreements-log" in facts and "Hợp lệ" in facts
    cosigned = page.locator("table.cosignatures tbody tr")
    assert await cosigned.count() == 1
    assert await cosigned.get_attribute("data-verified") == "yes"
    assert WITNESS.name in await cosigned.inner_text()
    await shot(page, "proof.png")

    # The commands as shown, run in a folder with the checkpoint saved through the page's link.
    commands = (await page.inner_text("pre.commands")).strip().splitlines()
    events = (await stack.registry.get(f"/v1/agreements/{agreement_id}/events")).json()["events"]
    assert [shlex.split(c)[2] for c in commands] == [e["id"] for e in events[:2]]
    link = page.get_by_role("link", name="Tải điểm kiểm tra", exact=True)
    download = await context.request.get(f"{console}{await link.get_attribute('href')}")
    assert download.ok
    assert f'filename="checkpoint-{size}.note"' in download.headers["content-disposition"]
    (tmp_path / f"checkpoint-{size}.note").write_bytes(await download.body())
    for command in commands:
        code, output = await run_shown(command, tmp_path, {"AUDIT_REGISTRY_TOKEN": stack.token()})
        assert code == 0 and "PROVEN" in output, (command, output)
    # The same command against the event after the checkpoint fails (exit 1): it can fail.
    later = shlex.split(commands[0])
    later[2] = events[2]["id"]
    code, output = await run_shown(shlex.join(later), tmp_path, {"AUDIT_REGISTRY_TOKEN": stack.token()})
    assert code == 1 and "NOT PROVEN: [in-tree]" in output, output

    # The page's time (reported, not asserted): its proofs are fetched and checked per request.
    started = time.perf_counter()
    again = await context.request.get(f"{console}/thoa-thuan/{agreement_id}/chung-minh")
    seconds = time.perf_counter() - started
    assert again.ok
    print(
        f"\nproof page: {len(await again.body())} bytes in {seconds * 1000:.0f} ms (3 events: 8 requests to the services)"
    )

    await context.close()
    assert recorder.requested and recorder.outside == []
    assert all(stays_on_this_machine(url) for url in recorder.requested)

    # axe-core needs script in the page: a context with JavaScript on, the pages unchanged.
    context, recorder = await recorded_context(chromium)
    page = await context.new_page()
    await sign_in(page, console)
    axe = Axe()
    results = {}
    for name, path in (
        ("agreement", f"/thoa-thuan/{agreement_id}"),
        ("proof", f"/thoa-thuan/{agreement_id}/chung-minh"),
    ):
        await page.goto(f"{console}{path}")
        found = await axe.run(page, options=WCAG_22_AA)
        results[name] = [
            f"{v['id']}: {[n['target'] for n in v['nodes']]}" for v in found.response["violations"]
        ]
    await context.close()
    assert results == {"agreement": [], "proof": []}, results
    assert recorder.outside == []
