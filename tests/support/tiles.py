"""The log as tiles in tests (docs/CONTRACT.md B11, "Tiles"): hundreds of events written at once,
Tessera's fsck (github.com/transparency-dev/tessera/cmd/fsck) built from the Go module proxy into
`.cache/bin`, and run against a live registry, and a proxy that corrupts one answer on its way.

fsck is built once (`go install module@version`, the module checked against
deploy/local/go-modules.sum first; its go.sum pins the rest), about 10 seconds with a warm module
cache. No Go or a failed build fails the test: it never skips.
"""

from __future__ import annotations

import asyncio
import fcntl
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from deploy.local.gomodules import install_pinned
from deploy.local.processes import free_port
from tests.support.builders import report_body, sign_body
from tests.support.stack import Stack, serve, stop_server

ROOT = Path(__file__).resolve().parents[2]
TESSERA = "github.com/transparency-dev/tessera"
TESSERA_VERSION = "v1.0.4"
FSCK = ROOT / ".cache" / "bin" / f"tessera-fsck-{TESSERA_VERSION}"
# fsck's own lines (tessera fsck/fsck.go and cmd/fsck/main.go, v1.0.4): it exits 0 either way.
FSCK_SUCCESS = "Successfully fsck'd log with size"
FSCK_FAILURE = "fsck failed:"


def build_fsck() -> Path:
    """Tessera's fsck, built once per version into .cache/bin."""
    FSCK.parent.mkdir(parents=True, exist_ok=True)
    with (FSCK.parent / ".tessera-fsck.lock").open("w") as guard:  # two runs at once build it once
        fcntl.flock(guard, fcntl.LOCK_EX)
        if FSCK.exists():
            return FSCK
        go = shutil.which("go")
        assert go is not None, (
            "Tessera's fsck is built with Go, which is not installed (README: prerequisites)"
        )
        build = FSCK.parent / "build-tessera"
        build.mkdir(parents=True, exist_ok=True)
        install_pinned(go, TESSERA, TESSERA_VERSION, "cmd/fsck", gobin=build).replace(FSCK)
        shutil.rmtree(build, ignore_errors=True)
    return FSCK


@dataclass(frozen=True)
class FsckRun:
    output: str  # stderr and stdout: klog writes to stderr

    @property
    def succeeded(self) -> bool:
        return FSCK_SUCCESS in self.output and FSCK_FAILURE not in self.output


async def run_fsck(
    binary: Path, storage_url: str, origin: str, verifier_key: str, token: str, folder: Path
) -> FsckRun:
    """fsck over `storage_url` (the tiles' prefix, with its trailing slash), without its terminal
    interface. Run beside the event loop: the registry under test answers in this same loop."""
    key = folder / "log.pub"
    key.write_text(verifier_key, encoding="utf-8")
    process = await asyncio.create_subprocess_exec(
        str(binary),
        f"--storage_url={storage_url}",
        f"--origin={origin}",
        f"--public_key={key}",
        f"--bearer_token={token}",
        "--ui=false",
        "--N=4",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), 120)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError("fsck did not finish within 120 s") from None
    return FsckRun(out.decode("utf-8", "replace"))


@asynccontextmanager
async def corrupting_proxy(upstream: str, corrupt: str) -> AsyncIterator[str]:
    """A proxy on 127.0.0.1 in front of `upstream` that flips one bit of the answer to the path
    `corrupt` (and passes everything else as it is); its base URL."""
    client = httpx.AsyncClient(base_url=upstream, timeout=30)

    async def forward(request: Request) -> Response:
        headers = {"accept-encoding": "identity"}
        if "authorization" in request.headers:
            headers["authorization"] = request.headers["authorization"]
        answer = await client.get(request.url.path, headers=headers)
        body = answer.content
        if request.url.path == corrupt and answer.status_code == 200:
            body = bytes([body[0] ^ 0x01]) + body[1:]
        kept = {k: v for k, v in answer.headers.items() if k.lower() in ("content-type", "cache-control")}
        return Response(body, answer.status_code, headers=kept)

    port = free_port()
    server = await serve(Starlette(routes=[Route("/{path:path}", forward)]), port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await stop_server(*server)
        await client.aclose()


async def write_events(stack: Stack, agreements: int, reports: int) -> int:
    """`agreements` agreements signed at once (after a first one), each then given `reports` reports one after another
    (its stream in order), all agreements at once: agreements × (1 + reports) events."""

    async def one() -> None:
        signed = await stack.sign(sign_body())
        for _ in range(reports):
            response = await stack.registry.post(
                f"/v1/agreements/{signed['agreement_id']}/progress-reports", json=report_body()
            )
            assert response.status_code == 201, response.text

    # The first alone: its signing registers the parties, which the others then find registered.
    await one()
    await asyncio.gather(*(one() for _ in range(agreements - 1)))
    return agreements * (1 + reports)
