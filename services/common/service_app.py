"""What both HTTP services put around their routes, in the same order."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, FastAPI

from services.common import docs_pages, limits, observability, tracing
from services.common.auth import dependencies
from services.common.auth.failures import failed_auth_limiter
from services.common.auth.verifier import TokenVerifier
from services.common.deprecation import DEPRECATIONS, install_deprecations
from services.common.settings import ClientAccessSettings


async def _database_answers(app: FastAPI) -> bool:
    # Ready means able to answer: the pool exists and its database answers.
    pool = getattr(app.state, "pool", None)
    if pool is None:
        return False
    try:
        return bool(await pool.fetchval("SELECT 1"))
    except Exception:
        return False


def finish(
    app: FastAPI,
    service: str,
    settings: ClientAccessSettings,
    verifier: TokenVerifier,
    install_errors: Callable[[FastAPI], None],
    *routers: APIRouter,
) -> FastAPI:
    """Limits, correlation and health endpoints, the docs pages, tracing, the service's error
    mapping, authentication, routes. Build `app` with `docs_url=None, redoc_url=None`: its docs
    pages are served from its own assets (services/common/docs_pages.py)."""

    async def ready() -> bool:
        return await _database_answers(app)

    # The body limit sits inside the correlation middleware, so a 413 is logged and counted too.
    limits.install(app, max_body_bytes=settings.max_body_bytes)
    observability.install(app, service, ready)
    docs_pages.install(app)
    # Once per process (each uvicorn worker builds its app). FastAPI itself then makes a server
    # span per request (its native OpenTelemetry support, pure ASGI, continuing the caller's
    # `traceparent`); with no provider configured it skips that at the cost of one check.
    tracing.configure(settings, f"coordreg-{service}")
    install_errors(app)
    dependencies.install(
        app,
        verifier,
        limits.rate_limiter(settings.rate_limit_per_second, settings.rate_limit_burst),
        failed_auth_limiter(
            settings.auth_failure_rate_per_second,
            settings.auth_failure_burst,
            settings.auth_failure_max_addresses,
            settings.trusted_proxies,
        ),
    )
    # Each straight into the app, in order: a request matches the first router's routes first.
    for router in routers:
        app.include_router(router)
    install_deprecations(app, DEPRECATIONS[service])
    return app
