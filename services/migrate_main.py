"""Entry point: `coordreg-migrate` applies the registry's and the read models' migrations, then
every component's privileges, as the migrator (docs/adr/0002-database-roles.md).

With a role per component, only the migrator owns the schemas, so the services cannot migrate
at start: this command runs first (the local stacks run it, Kubernetes runs it as a Job). With
one DATABASE_URL for everything the services still migrate themselves, and it is not needed.
"""

from __future__ import annotations

import asyncio

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.cli import parse_no_arguments
from services.common.db import create_pool, migrate
from services.common.db_roles import apply_privileges
from services.common.observability import configure_logging
from services.common.settings import ServiceSettings
from services.projections.migrations import MIGRATIONS as PROJECTION_MIGRATIONS
from services.registry.migrations import MIGRATIONS as REGISTRY_MIGRATIONS


class MigratorSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="MIGRATOR_", extra="ignore")

    # The live read models' schema: the projections' PROJECTIONS_READ_SCHEMA.
    read_schema: str = Field("projections", pattern=r"^[a-z_][a-z0-9_]{0,62}$")


async def run(settings: MigratorSettings) -> list[str]:
    """The migrations applied now (component/name), in order."""
    pool = await create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        applied = [f"registry/{name}" for name in await migrate(pool, "registry", REGISTRY_MIGRATIONS)]
        applied += [
            f"projections/{name}"
            for name in await migrate(pool, "projections", PROJECTION_MIGRATIONS, schema=settings.read_schema)
        ]
        if settings.read_schema != "projections":
            # migrate() grants on its own schema names; a renamed live schema needs its turn.
            async with pool.acquire() as conn:
                await apply_privileges(conn, settings.read_schema)
    finally:
        await pool.close()
    return applied


def main(argv: list[str] | None = None) -> None:
    parse_no_arguments(
        argv,
        MigratorSettings,
        "Applies the registry's and the read models' pending migrations, then re-applies each"
        " component's database privileges, as the migrator (the role that owns the schemas).",
    )
    settings = MigratorSettings()
    configure_logging(settings.log_level, settings.json_logs)
    applied = asyncio.run(run(settings))
    print(f"coordreg-migrate: {len(applied)} migration(s) applied; privileges re-applied", flush=True)


if __name__ == "__main__":
    main()
