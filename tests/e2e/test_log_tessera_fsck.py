"""The live registry's log, read as tiles by an independent program: Tessera's fsck
(github.com/transparency-dev/tessera/cmd/fsck v1.0.4, built from the Go module proxy).

A stack on the real store takes a few hundred events (a full level-0 tile and partial ones), the
integrator takes them into the tree, and a checkpoint is signed. fsck fetches the checkpoint (the
log's verifier key given to it beforehand, with the origin), every entry bundle, rebuilds the tree
from the entries and compares every tile and the root with what the registry serves. fsck exits 0
whatever it finds, so its output is read: its success line, and no failure line. Through a proxy
that flips one bit of one tile, the same run must report the failure, naming that tile.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.audit.settings import DEV_LOG_VERIFIER_KEY
from services.transparency import note
from tests.support.kafka import Brokers
from tests.support.log import integrate
from tests.support.stack import Stack, running_stack
from tests.support.tiles import (
    FSCK_FAILURE,
    FSCK_SUCCESS,
    build_fsck,
    corrupting_proxy,
    run_fsck,
    write_events,
)

LOG_KEY = note.parse_verifier_key(DEV_LOG_VERIFIER_KEY)
PREFIX = "/v1/log/tiles/"


@pytest.fixture
async def log_stack(database_url: str, kafka: Brokers, topic: str) -> AsyncIterator[Stack]:
    async with running_stack(database_url, kafka, topic, relay=False, projections=False) as stack:
        yield stack


async def test_tesseras_fsck_checks_the_live_tiled_log(log_stack: Stack, tmp_path: Path) -> None:
    binary = build_fsck()  # fails, never skips, if Go is missing or the build fails
    stack = log_stack
    await write_events(stack, agreements=30, reports=9)
    await integrate(stack.pool, batch=100)
    assert (await stack.registry.post("/v1/log/checkpoints")).status_code == 201
    checkpoint = (await stack.registry.get(PREFIX + "checkpoint")).text
    head = note.Checkpoint.parse(note.open_note(checkpoint, [LOG_KEY])[0].body)
    assert 256 < head.size < 512  # a full level-0 tile, a partial one, a partial level-1 tile
    keys = (await stack.registry.get("/v1/log/keys")).json()
    # The key known beforehand (the development log's), and the one served, are the same here.
    assert keys["verifier_key"] == DEV_LOG_VERIFIER_KEY
    token = stack.token(scopes=["agreements:read"])

    began = time.monotonic()
    checked = await run_fsck(
        binary, stack.registry_url + PREFIX, keys["origin"], DEV_LOG_VERIFIER_KEY, token, tmp_path
    )
    seconds = time.monotonic() - began
    assert checked.succeeded, checked.output
    assert f"{FSCK_SUCCESS} {head.size} and root" in checked.output, checked.output
    print(f"\nfsck: a log of {head.size} leaves checked in {seconds:.2f} s")

    # One bit of the full level-0 tile flipped on its way: fsck must say so, naming the tile.
    corrupt = "/v1/log/tiles/tile/0/000"
    async with corrupting_proxy(stack.registry_url, corrupt) as proxy:
        tampered = await run_fsck(
            binary, proxy + PREFIX, keys["origin"], DEV_LOG_VERIFIER_KEY, token, tmp_path
        )
    assert not tampered.succeeded, tampered.output
    assert FSCK_FAILURE in tampered.output and "tile/0/000: log has:" in tampered.output, tampered.output
    assert FSCK_SUCCESS not in tampered.output

    # And a token that may not read the log: fsck cannot even fetch the checkpoint.
    refused = await run_fsck(
        binary,
        stack.registry_url + PREFIX,
        keys["origin"],
        DEV_LOG_VERIFIER_KEY,
        stack.token(scopes=["agreements:sign"]),
        tmp_path,
    )
    assert not refused.succeeded and "403" in refused.output, refused.output
