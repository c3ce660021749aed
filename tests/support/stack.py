"""The system under test, on real parts: registry, relay and projections on a real
PostgreSQL database and a real Kafka topic, each served over real HTTP by uvicorn.

Authentication is on, as in production: `stack.registry` and `stack.projections` send a
default bearer token (client `test-client`, every scope, every party the tests use),
minted with the development key. `stack.token(...)` mints others; send one with
`headers=stack.bearer(token)`, or none from a fresh `httpx.AsyncClient(base_url=stack.registry_url)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx
import uvicorn

from deploy.local.db_accounts import DatabaseAccounts, generated_passwords, prepare_database
from deploy.local.processes import free_port
from deploy.tokens import mint
from services.common.auth import ALL_SCOPES, DEFAULT_ISSUER
from services.common.db import create_pool
from services.projections.entrypoints.app import create_app as create_projections
from services.projections.settings import ProjectionSettings
from services.registry.adapters.relay import OutboxRelay
from services.registry.entrypoints.app import create_app as create_registry
from services.registry.settings import RegistrySettings
from tests.support.kafka import Brokers, settings_of

TEST_CLIENT = "test-client"
# Every party id the tests sign, amend, report or close as.
TEST_PARTIES = (
    "mttq-hoa-binh",
    "hctd-hoa-binh",
    "bao-hoa-binh",
    "sldtbxh-hoa-binh",
    "so-noi-vu",
    "so-tttt-hoa-binh",
    "stttt-hoa-binh",
    "hlhpn-hoa-binh",
    "dai-ptth-hoa-binh",
    "nhcsxh-hoa-binh",
    "snnptnt-hoa-binh",
    "so-tai-chinh-hoa-binh",
    "sldtbxh",
    "x",
)


_PASSWORDS: dict[str, str] = {}


def session_passwords() -> dict[str, str]:
    """The components' passwords for this test process (the roles are the server's, not a database's)."""
    if not _PASSWORDS:
        _PASSWORDS.update(generated_passwords())
    return _PASSWORDS


async def serve(app: Any, port: int) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", proxy_headers=False
        )
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    return server, task


async def stop_server(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    server.should_exit = True
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, 20)


@dataclass
class Stack:
    database_url: str
    kafka: Brokers
    topic: str
    registry: httpx.AsyncClient = field(init=False, repr=False)
    projections: httpx.AsyncClient = field(init=False, repr=False)
    pool: asyncpg.Pool = field(init=False, repr=False)
    read_pool: asyncpg.Pool = field(init=False, repr=False)
    client_id: str = TEST_CLIENT
    party_ids: tuple[str, ...] = TEST_PARTIES
    accounts: DatabaseAccounts = field(init=False, repr=False)
    registry_url: str = field(init=False, default="")
    projections_url: str = field(init=False, default="")
    # The issuer the services trust; the stack's own tokens are minted in its name.
    issuer: str = DEFAULT_ISSUER

    def token(
        self,
        sub: str = TEST_CLIENT,
        scopes: Iterable[str] = ALL_SCOPES,
        party_ids: Iterable[str] | None = None,
        **options: Any,
    ) -> str:
        """A token signed with the development key (see `deploy.tokens.mint` for the options)."""
        options.setdefault("issuer", self.issuer)
        return mint(sub, scopes, self.party_ids if party_ids is None else party_ids, **options)

    @staticmethod
    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    async def wait_for_position(self, position: int, timeout: float = 30) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            found = await self.pool.fetchval(
                "SELECT EXISTS (SELECT 1 FROM projections.applied WHERE position = $1)", position
            )
            if found:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"position {position} not applied within {timeout}s")

    async def sign(self, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.registry.post("/v1/agreements", json=body)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result

    async def register_party(self, party_id: str, name: str = "", **fields: Any) -> dict[str, Any]:
        """A directory entry (decision 15), registered with the stack's all-scopes token."""
        body = {"party_id": party_id, "name": name or f"Sở {party_id}", "kind": "department", **fields}
        response = await self.registry.post("/v1/parties", json=body)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        return result


@contextlib.asynccontextmanager
async def running_stack(
    database_url: str,
    kafka: Brokers,
    topic: str,
    *,
    relay: bool = True,
    projections: bool = True,
    registry_options: dict[str, Any] | None = None,
    projection_options: dict[str, Any] | None = None,
    issuer: str = DEFAULT_ISSUER,
    jwks: str = "",
) -> AsyncIterator[Stack]:
    """`registry_options` / `projection_options` override settings fields (e.g. a low rate limit).
    `issuer` and `jwks` (inline or a file's path): whose tokens both services trust, as
    *_AUTH_ISSUER and *_AUTH_JWKS; the stack's own tokens need the development key among them."""
    stack = Stack(database_url, kafka, topic, issuer=issuer)
    trust = {"auth_issuer": issuer, "auth_jwks": jwks} if jwks else {}
    # Each component as its own database role, as deployed (docs/adr/0002-database-roles.md);
    # `database_url` (the administrator's) stays the tests' own view: `stack.pool`. Each job as
    # its own Kafka principal, as in production.
    read_schema = (projection_options or {}).get("read_schema", "projections")
    stack.accounts = await prepare_database(database_url, session_passwords(), read_schema)
    registry_settings = RegistrySettings(
        **{
            "database_url": stack.accounts.urls["registry"],
            **settings_of(kafka.relay),
            "topic": topic,
            "json_logs": False,
            **trust,
            **(registry_options or {}),
        }
    )
    projection_settings = ProjectionSettings(
        **{
            "database_url": stack.accounts.urls["query"],
            "worker_database_url": stack.accounts.urls["worker"],
            **settings_of(kafka.projections),
            "topic": topic,
            "consumer_group": f"projections-{uuid.uuid4().hex[:8]}",
            "json_logs": False,
            **trust,
            **(projection_options or {}),
        }
    )
    headers = Stack.bearer(stack.token())
    stop = asyncio.Event()
    servers = []
    stack.pool = await create_pool(database_url, min_size=1, max_size=5)
    relay_pool = await create_pool(stack.accounts.urls["relay"], min_size=1, max_size=4)
    relay_task = None
    try:
        registry_port = free_port()
        servers.append(await serve(create_registry(registry_settings), registry_port))
        stack.registry_url = f"http://127.0.0.1:{registry_port}"
        stack.registry = httpx.AsyncClient(base_url=stack.registry_url, headers=headers, timeout=30)
        if relay:
            relay_task = asyncio.create_task(
                OutboxRelay(relay_pool, kafka.relay, topic, poll_seconds=0.2).run(stop)
            )
        projections_port = free_port()
        if projections:
            servers.append(await serve(create_projections(projection_settings), projections_port))
        stack.projections_url = f"http://127.0.0.1:{projections_port}"
        stack.projections = httpx.AsyncClient(base_url=stack.projections_url, headers=headers, timeout=30)
        yield stack
    finally:
        stop.set()
        if relay_task is not None:
            await asyncio.wait_for(relay_task, 20)
        for server, task in reversed(servers):
            await stop_server(server, task)
        with contextlib.suppress(AttributeError):
            await stack.registry.aclose()
            await stack.projections.aclose()
        await relay_pool.close()
        await stack.pool.close()
