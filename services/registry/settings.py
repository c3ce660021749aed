"""The registry's configuration: one settings object, read from the environment."""

from __future__ import annotations

import datetime as dt

from coordreg_contracts.topic import CHECKPOINT_TOPIC
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.common.settings import ClientAccessSettings


class RegistrySettings(ClientAccessSettings):
    model_config = SettingsConfigDict(env_prefix="REGISTRY_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    # Processes serving the API on one listening socket (uvicorn's workers). The registry keeps
    # no state but caches, and the database decides every race (optimistic concurrency), so
    # per-agreement order holds across processes; more than one uses both cores of a small
    # machine (bench/README.md). Each process has its own pool of `pool_max_size` connections.
    workers: int = Field(default=1, ge=1, le=64)
    pool_min_size: int = 2
    pool_max_size: int = 20
    # Transparent retries of a command that lost an optimistic-concurrency race and does not
    # depend on the version the caller saw (no If-Match).
    concurrency_retries: int = 5
    # The bytes of one page of events or of log leaves (docs/CONTRACT.md B7, B11): a page stops
    # before the item that would pass it, and always holds one. An item is about the size of
    # the command that made it (max_body_bytes), so the default holds 16 of the largest.
    max_page_bytes: int = Field(default=4 * 1024 * 1024, ge=64 * 1024)
    # The relay's own database role (REGISTRY_RELAY_DATABASE_URL; docs/adr/0002-database-roles.md):
    # the registry and the relay read the same settings but may not do each other's work.
    # Empty: database_url, one role for both.
    relay_database_url: str = ""
    relay_batch_size: int = 500
    relay_poll_seconds: float = 0.5
    # After a commit's wake-up the relay waits this long for more commits before it reads, so
    # that a Kafka transaction (and its commit markers on every partition) carries many events
    # rather than one command's: a few ms of projection lag for a fraction of the broker's CPU.
    relay_linger_seconds: float = Field(default=0.01, ge=0, le=1)
    # The relay process serves its Prometheus metrics (/metrics) here; port 0 serves none.
    relay_metrics_host: str = "127.0.0.1"
    relay_metrics_port: int = Field(default=8002, ge=0, le=65535)
    # How often the relay (leader and standby) counts the outbox's unpublished rows for its
    # relay_outbox_backlog and relay_outbox_oldest_age_seconds gauges: one query each time.
    relay_outbox_check_seconds: float = Field(default=5.0, gt=0)
    # The transparency log (docs/CONTRACT.md B11). Its name in every checkpoint (C2SP origin);
    # empty: the development log's name, which production refuses.
    log_origin: str = ""
    # The Ed25519 private key (PEM text, or the path of a PEM file) that signs checkpoints, and
    # the key's name in signature lines (default: the origin). Empty: the development key
    # (services/transparency/log.py), which production refuses.
    log_signing_key: str = ""
    log_key_name: str = ""
    # Verifier keys (Go note format, space-separated) of retired signing keys, still published
    # so that the checkpoints they signed verify; and of the witnesses whose cosignatures the
    # registry accepts (POST /v1/log/cosignatures).
    log_retired_keys: str = ""
    log_witness_keys: str = ""
    # The witnessing policy (C2SP tlog-policy; docs/CONTRACT.md B11): a path to the policy file,
    # or its text. It names this log, the witnesses (their cosignature/v1 keys, and the URL the
    # relay submits checkpoints to) and the quorum. Empty: no policy, no witness is fed.
    log_policy: str = ""
    # Plain Ed25519 cosignatures (type 0x01, the witnesses of before cosignature/v1) are
    # accepted for new checkpoints until the end of this day (UTC); those stored stay served.
    log_legacy_cosignatures_until: dt.date = dt.date(2027, 6, 30)
    # A cosignature's timestamp may be this far ahead of the registry's clock, no further.
    log_cosignature_max_skew_seconds: int = Field(default=300, ge=0, le=86400)
    # The witness feeder (in every relay process, one leads; docs/CONTRACT.md B11) submits each
    # new checkpoint to the policy's witnesses that have a URL (C2SP tlog-witness). One call
    # waits this long at most; a witness that failed is tried again after 1, 2, 4 … seconds,
    # never more than the cap apart; the leader looks for a new checkpoint this often.
    log_witness_timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    log_witness_backoff_max_seconds: float = Field(default=300.0, ge=1)
    log_witness_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    # The integrator (in every relay process, one leads) signs a checkpoint when the tree grew
    # and this long has passed since the last one.
    log_checkpoint_seconds: float = Field(default=10.0, gt=0)
    # Each new checkpoint is also published on this topic (empty: not published).
    log_checkpoint_topic: str = CHECKPOINT_TOPIC
    # The event key (docs/adr/0003-signed-envelopes.md): the Ed25519 private key (PEM text, or the
    # path of a PEM file) that signs every event's hash as it is appended, and its name (part of
    # the key ID consumers match). Empty: the development key (services/common/envelope_signatures.py),
    # which production refuses. Retired keys' verifier keys (Go note format, space-separated) stay
    # published at GET /v1/event-keys, so that consumers keep verifying the events they signed.
    event_signing_key: str = ""
    event_key_name: str = ""
    event_retired_keys: str = ""
    # The succession process manager runs in every registry instance (decision 17): woken by
    # the queue's notification, and at least this often; 0 turns it off in this instance.
    succession_poll_seconds: float = 1.0
