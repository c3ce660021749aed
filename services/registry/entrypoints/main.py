"""Entry point: `coordreg-registry` serves the command API
(also `python -m services.registry.entrypoints.main`)."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

from services.common.cli import parse_no_arguments
from services.common.observability import configure_logging, share_metrics_between_processes
from services.registry.entrypoints.app import create_app
from services.registry.settings import RegistrySettings


def app_from_environment() -> FastAPI:
    """The application of one worker process: each reads the same environment."""
    settings = RegistrySettings()
    configure_logging(settings.log_level, settings.json_logs)
    return create_app(settings)


# How long a worker process may take to start, or to answer its supervisor's health check.
WORKER_HEALTHCHECK_SECONDS = 60


# uvicorn would otherwise take X-Forwarded-For from a peer at 127.0.0.1 as the client's address:
# the service decides whom to believe itself (`*_TRUSTED_PROXIES`, services/common/auth/failures.py).
def main(argv: list[str] | None = None) -> None:
    parse_no_arguments(argv, RegistrySettings, "Serves the registry's command API (HTTP).")
    settings = RegistrySettings()
    configure_logging(settings.log_level, settings.json_logs)
    if settings.workers == 1:
        uvicorn.run(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            log_level="warning",
            proxy_headers=False,
        )
        return
    # Several processes accept on one socket; uvicorn restarts a worker that dies. A scrape of
    # /metrics reaches one of them, which answers for all.
    share_metrics_between_processes()
    uvicorn.run(
        "services.registry.entrypoints.main:app_from_environment",
        factory=True,
        workers=settings.workers,
        # uvicorn's default of 5 s killed and restarted workers still importing on a busy machine
        # (2 cores, load average 28), for ever: fault scenario 7 never saw the registry ready.
        # A worker that stops answering is now replaced after this long instead of 5 s.
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()
