"""Builds the registry's FastAPI application around a database pool."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.common import auth, service_app
from services.common.db import create_pool, migrate
from services.registry import bootstrap
from services.registry.entrypoints.errors import install_errors
from services.registry.entrypoints.routes import router
from services.registry.migrations import MIGRATIONS
from services.registry.settings import RegistrySettings


def create_app(settings: RegistrySettings) -> FastAPI:
    # Refuses to build (and so to start) without trustworthy keys: see services/common/auth/.
    verifier = auth.verifier_from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool = await create_pool(
            settings.database_url, min_size=settings.pool_min_size, max_size=settings.pool_max_size
        )
        await migrate(pool, "registry", MIGRATIONS)
        app.state.pool = pool
        app.state.registry = bootstrap.on_postgres(pool, retries=settings.concurrency_retries)
        try:
            yield
        finally:
            await pool.close()

    app = FastAPI(
        title="Coordination Agreement Registry — commands",
        version="1.0.0",
        description="Sign, amend, report on and close coordination agreements. Every act is an immutable event.",
        lifespan=lifespan,
    )

    return service_app.finish(app, "registry", settings, verifier, install_errors, router)
