"""Entry point: `python -m services.registry.entrypoints.main` serves the command API."""

from __future__ import annotations

import uvicorn

from services.common.observability import configure_logging
from services.registry.entrypoints.app import create_app
from services.registry.settings import RegistrySettings


def main() -> None:
    settings = RegistrySettings()
    configure_logging(settings.log_level, settings.json_logs)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="warning")


if __name__ == "__main__":
    main()
