"""Builds the registry's FastAPI application around a database pool."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from fastapi import FastAPI

from services.common import auth, service_app
from services.common.db import create_pool, migrate
from services.common.envelope_signatures import EnvelopeSigner, EnvelopeVerifier, load_event_signer
from services.common.openapi import add_schemas
from services.registry import bootstrap
from services.registry.adapters.postgres_store import SUCCESSION_CHANNEL
from services.registry.entrypoints.errors import install_errors
from services.registry.entrypoints.event_key_routes import router as event_key_router
from services.registry.entrypoints.log_routes import SignedNote
from services.registry.entrypoints.log_routes import router as log_router
from services.registry.entrypoints.routes import COMMAND_ROUTES, router
from services.registry.entrypoints.tile_routes import SCHEMAS as TILE_SCHEMAS
from services.registry.entrypoints.tile_routes import router as tile_router
from services.registry.migrations import MIGRATIONS
from services.registry.service_layer.successions import run_forever
from services.registry.settings import RegistrySettings
from services.transparency import note
from services.transparency.log import CheckpointSigner, LogKeyError, load_policy, load_signer
from services.transparency.policy import Policy


def log_signer_from_settings(settings: RegistrySettings) -> CheckpointSigner:
    return load_signer(
        environment=settings.environment,
        origin=settings.log_origin,
        key_pem=settings.log_signing_key,
        key_name=settings.log_key_name,
    )


def log_policy_from_settings(settings: RegistrySettings, signer: CheckpointSigner) -> Policy | None:
    return load_policy(settings.log_policy, signer)


def witness_verifiers(settings: RegistrySettings, policy: Policy | None) -> list[note.Verifier]:
    """The witnesses whose cosignatures the registry accepts: REGISTRY_LOG_WITNESS_KEYS (type
    0x01 or 0x04) and the policy's."""
    try:
        listed = [note.parse_witness_key(key) for key in settings.log_witness_keys.split()]
    except note.NoteError as exc:
        raise LogKeyError(f"REGISTRY_LOG_WITNESS_KEYS: {exc}") from None
    from_policy = [w.verifier for w in policy.witnesses] if policy else []
    return list(dict.fromkeys([*listed, *from_policy]))


def event_signer_from_settings(settings: RegistrySettings) -> EnvelopeSigner:
    return load_event_signer(
        environment=settings.environment, key_pem=settings.event_signing_key, key_name=settings.event_key_name
    )


@asynccontextmanager
async def _successions(
    pool: asyncpg.Pool, registry: bootstrap.Registry, poll_seconds: float
) -> AsyncIterator[None]:
    """The succession process manager beside the HTTP API, on a connection that listens for the
    queue's notifications (a crash loses nothing: the queue is in the database)."""
    if poll_seconds <= 0:
        yield
        return
    wake = asyncio.Event()
    conn = await pool.acquire()

    def notified(*_: object) -> None:
        wake.set()

    await conn.add_listener(SUCCESSION_CHANNEL, notified)
    task = asyncio.create_task(run_forever(registry.successions, wake, idle_seconds=poll_seconds))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        with contextlib.suppress(Exception):
            await conn.remove_listener(SUCCESSION_CHANNEL, notified)
        await pool.release(conn)


def create_app(settings: RegistrySettings) -> FastAPI:
    # Refuses to build (and so to start) without trustworthy keys: see services/common/auth/.
    verifier = auth.verifier_from_settings(settings)
    # Likewise without a log key of its own in production (services/transparency/log.py).
    log_signer = log_signer_from_settings(settings)
    log_policy = log_policy_from_settings(settings, log_signer)
    log_witnesses = witness_verifiers(settings, log_policy)
    # And without an event key of its own (services/common/envelope_signatures.py).
    event_signer = event_signer_from_settings(settings)
    retired_event_keys = settings.event_retired_keys.split()
    if retired_event_keys:
        EnvelopeVerifier.from_keys(retired_event_keys)  # a malformed key refuses to start, too

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(
            settings.database_url,
            min_size=settings.pool_min_size,
            max_size=settings.pool_max_size,
            stateless=True,
        )
        await migrate(pool, "registry", MIGRATIONS)
        app.state.pool = pool
        app.state.log_signer = log_signer
        app.state.log_retired_keys = settings.log_retired_keys.split()
        app.state.log_witnesses = log_witnesses
        app.state.log_policy = log_policy
        app.state.log_legacy_until = settings.log_legacy_cosignatures_until
        app.state.log_max_skew = settings.log_cosignature_max_skew_seconds
        app.state.event_signer = event_signer
        app.state.event_retired_keys = retired_event_keys
        registry = bootstrap.on_postgres(pool, retries=settings.concurrency_retries, signer=event_signer)
        app.state.registry = registry
        try:
            # The manager stops, and gives its connection back, before the pool closes.
            async with _successions(pool, registry, settings.succession_poll_seconds):
                yield
        finally:
            await pool.close()

    app = FastAPI(
        title="Coordination Agreement Registry — commands",
        version="1.0.0",
        description="Sign, amend, report on and close coordination agreements. Every act is an immutable event.",
        lifespan=lifespan,
        # /docs and /redoc from the service's own assets, not a CDN (services/common/docs_pages.py).
        docs_url=None,
        redoc_url=None,
        # One schema per model, as a request validates it: a response model that shares a model
        # with a request body (Party, Term...) names the same component, not Party-Output.
        separate_input_output_schemas=False,
    )

    app.state.max_page_bytes = settings.max_page_bytes
    # The commands and reads first (most requests), then the transparency log's routes (B11).
    service_app.finish(
        app, "registry", settings, verifier, install_errors, router, log_router, tile_router, event_key_router
    )
    # The request bodies the command routes read themselves, the log's signed notes (text) and tiles.
    add_schemas(app, [*(route.command for route in COMMAND_ROUTES), SignedNote, *TILE_SCHEMAS])
    return app
