"""The projections service's configuration: one settings object, read from the environment."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.envelope_signatures import EnvelopeVerifier, load_event_verifier
from services.common.patterns import SCHEMA_NAME
from services.common.settings import ClientAccessSettings


class ProjectionSettings(ClientAccessSettings):
    model_config = SettingsConfigDict(env_prefix="PROJECTIONS_", extra="ignore")

    consumer_group: str = "projections.v1"
    # The schema holding the read models (the audit tool swaps a rebuilt one in).
    read_schema: str = Field("projections", pattern=SCHEMA_NAME)
    host: str = "127.0.0.1"
    port: int = 8001
    # Run the Kafka consumer inside the API process (one process locally); extra
    # workers can run `python -m services.projections.entrypoints.worker` in the same group.
    run_consumer: bool = True
    batch_max_records: int = 500
    # The worker's own database role (PROJECTIONS_WORKER_DATABASE_URL; docs/adr/0002-database-roles.md):
    # it writes the read models, while database_url, the query API's, may only read them. The
    # consumer inside the API process (run_consumer) uses it too. Empty: database_url, one role.
    worker_database_url: str = ""
    # A standalone worker (coordreg-projection-worker) serves its Prometheus metrics (/metrics)
    # here; port 0 serves none. The API process's worker is in the API's own /metrics.
    worker_metrics_host: str = "127.0.0.1"
    worker_metrics_port: int = Field(default=8003, ge=0, le=65535)
    min_position_wait_seconds: float = 5.0
    pool_min_size: int = 2
    pool_max_size: int = 10
    # The registry's event verifier keys (Go note format, space- or newline-separated: the current
    # key and any retired ones, as GET /v1/event-keys publishes them). A record is applied only
    # with a signature by one of them (docs/adr/0003-signed-envelopes.md). Empty: the development
    # key, which production refuses.
    event_verifier_keys: str = ""

    def envelope_verifier(self) -> EnvelopeVerifier:
        return load_event_verifier(
            environment=self.environment,
            keys=self.event_verifier_keys,
            setting="PROJECTIONS_EVENT_VERIFIER_KEYS",
        )
