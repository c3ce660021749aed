"""Builds the projections service: the query API and (by default) a consumer worker in-process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.common import auth, service_app
from services.common.db import create_pool, migrate
from services.projections.adapters.kafka_consumer import ProjectionWorker
from services.projections.entrypoints.routes import install_errors, router
from services.projections.migrations import MIGRATIONS
from services.projections.settings import ProjectionSettings


def create_app(settings: ProjectionSettings) -> FastAPI:
    # Refuses to build (and so to start) without trustworthy keys: see services/common/auth/.
    verifier = auth.verifier_from_settings(settings)
    # Likewise, when it runs a worker, without the registry's event key in production
    # (services/common/envelope_signatures.py); the query API alone applies nothing.
    envelope_verifier = settings.envelope_verifier() if settings.run_consumer else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(
            settings.database_url,
            min_size=settings.pool_min_size,
            max_size=settings.pool_max_size,
            schema=settings.read_schema,
            # No session state in the read side (no advisory locks, LISTEN or SET outside a
            # transaction): a released connection needs no reset round trip.
            stateless=True,
        )
        await migrate(pool, "projections", MIGRATIONS, schema=settings.read_schema)
        app.state.pool = pool
        app.state.settings = settings
        stop = asyncio.Event()
        task = None
        # The consumer writes as the worker's role, on a pool of its own, when it has one.
        worker_pool = None
        if settings.run_consumer and settings.worker_database_url:
            worker_pool = await create_pool(
                settings.worker_database_url,
                min_size=1,
                max_size=3,
                schema=settings.read_schema,
                stateless=True,
            )
        if settings.run_consumer:
            assert envelope_verifier is not None
            worker = ProjectionWorker(
                worker_pool or pool,
                settings.kafka_connection(),
                settings.topic,
                settings.consumer_group,
                max_records=settings.batch_max_records,
                verifier=envelope_verifier,
            )
            app.state.worker = worker
            task = asyncio.create_task(worker.run(stop))
        try:
            yield
        finally:
            stop.set()
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait_for(task, 15)
            if worker_pool is not None:
                await worker_pool.close()
            await pool.close()

    app = FastAPI(
        title="Coordination Agreement Registry — queries",
        version="1.0.0",
        description="Read models built from the agreements event stream: each party's obligations and history.",
        lifespan=lifespan,
        # /docs and /redoc from the service's own assets, not a CDN (services/common/docs_pages.py).
        docs_url=None,
        redoc_url=None,
        separate_input_output_schemas=False,  # one schema per model (as the registry's)
    )

    return service_app.finish(app, "projections", settings, verifier, install_errors, router)
