"""Entry point: `coordreg-registry` serves the command API
(also `python -m services.registry.entrypoints.main`)."""

from __future__ import annotations

import uvicorn

from services.common.cli import parse_no_arguments
from services.common.observability import configure_logging
from services.registry.entrypoints.app import create_app
from services.registry.settings import RegistrySettings


def main(argv: list[str] | None = None) -> None:
    parse_no_arguments(argv, RegistrySettings, "Serves the registry's command API (HTTP).")
    settings = RegistrySettings()
    configure_logging(settings.log_level, settings.json_logs)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="warning")


if __name__ == "__main__":
    main()
