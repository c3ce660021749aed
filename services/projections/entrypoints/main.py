"""Entry point: `coordreg-projections` serves queries and runs a projection worker
(also `python -m services.projections.entrypoints.main`)."""

from __future__ import annotations

import uvicorn

from services.common.cli import parse_no_arguments
from services.common.observability import configure_logging
from services.projections.entrypoints.app import create_app
from services.projections.settings import ProjectionSettings


# uvicorn would otherwise take X-Forwarded-For from a peer at 127.0.0.1 as the client's address:
# the service decides whom to believe itself (`*_TRUSTED_PROXIES`, services/common/auth/failures.py).
def main(argv: list[str] | None = None) -> None:
    parse_no_arguments(
        argv,
        ProjectionSettings,
        "Serves the query API (HTTP) and, unless PROJECTIONS_RUN_CONSUMER=false, runs a projection "
        "worker in the same process.",
    )
    settings = ProjectionSettings()
    configure_logging(settings.log_level, settings.json_logs)
    uvicorn.run(
        create_app(settings), host=settings.host, port=settings.port, log_level="warning", proxy_headers=False
    )


if __name__ == "__main__":
    main()
