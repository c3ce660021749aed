"""Entry point: `python -m services.projections.entrypoints.main` serves queries and runs a projection worker."""

from __future__ import annotations

import uvicorn

from services.common.observability import configure_logging
from services.projections.entrypoints.app import create_app
from services.projections.settings import ProjectionSettings


def main() -> None:
    settings = ProjectionSettings()
    configure_logging(settings.log_level, settings.json_logs)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="warning")


if __name__ == "__main__":
    main()
