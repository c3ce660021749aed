"""The projections schema's SQL migrations, applied in file-name order by `services.common.db.migrate`."""

from pathlib import Path

MIGRATIONS = Path(__file__).parent
