"""The audit tool's configuration: one settings object from the environment; CLI flags override it."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from services.common.envelope_signatures import DEV_VERIFIER_KEY, EnvelopeVerifier, EventKeyError
from services.common.patterns import SCHEMA_NAME
from services.common.settings import ServiceSettings
from services.transparency.log import DEV_LOG_VERIFIER_KEY
from services.transparency.note import NoteError, Verifier, parse_verifier_key, parse_witness_key

__all__ = ["DEV_LOG_VERIFIER_KEY", "SCHEMA_PATTERN", "AuditSettings"]

SCHEMA_PATTERN = SCHEMA_NAME


class AuditSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="AUDIT_", extra="ignore")

    # The live projection worker's consumer group: a rebuilt shadow stores its Kafka
    # offsets under this name, so that once swapped in the live worker continues from them.
    consumer_group: str = "projections.v1"
    # The schema holding the live read models.
    live_schema: str = Field("projections", pattern=SCHEMA_PATTERN)
    # Events per transaction when rebuilding, and rows per fetch when walking the store.
    batch_size: int = Field(1000, ge=1)
    # How long `swap` waits for the live projection to reach a shadow that is ahead of it.
    swap_wait_seconds: float = Field(120.0, gt=0)
    # Seconds between two progress lines on stderr (0 turns progress off).
    progress_seconds: float = Field(1.0, ge=0)
    # The transparency log's verifier key(s), Go note format, separated by spaces: the
    # checkpoints `verify` finds in the store must be signed by one of them. Default: the
    # development key's (services/transparency/log.py), which proves nothing in production.
    # The registry the log commands (witness, prove, check-consistency) ask, and their bearer
    # token (AUDIT_REGISTRY_URL, AUDIT_REGISTRY_TOKEN); --registry and --token override them.
    registry_url: str = ""
    registry_token: str = ""
    log_verifier_key: str = DEV_LOG_VERIFIER_KEY
    # The registry's event verifier key(s), Go note format, separated by spaces (GET
    # /v1/event-keys): each stored signature must verify under one of them. Default: the
    # development key's (services/common/envelope_signatures.py), which proves nothing in production.
    event_verifier_keys: str = DEV_VERIFIER_KEY
    # The witnesses' verifier keys (C2SP vkeys, type 0x04 cosignature/v1 or 0x01, separated by
    # spaces): every cosignature `verify` finds stored must be by one of them and verify on its
    # checkpoint. Empty: the cosignatures are counted, not checked (the summary says so).
    log_witness_keys: str = ""

    def envelope_verifier(self) -> EnvelopeVerifier:
        try:
            return EnvelopeVerifier.from_keys(self.event_verifier_keys.split())
        except EventKeyError as exc:
            raise ValueError(f"AUDIT_EVENT_VERIFIER_KEYS: {exc}") from None

    @field_validator("log_witness_keys")
    @classmethod
    def _witness_keys(cls, value: str) -> str:
        parse_witness_keys(value)
        return value

    @field_validator("log_verifier_key")
    @classmethod
    def _verifier_keys(cls, value: str) -> str:
        if not value.split():
            raise ValueError("AUDIT_LOG_VERIFIER_KEY needs at least one verifier key")
        parse_verifier_keys(value)
        return value


def _keys(text: str, parse: Callable[[str], Verifier], setting: str) -> list[Verifier]:
    try:
        return [parse(key) for key in text.split()]
    except NoteError as exc:
        raise ValueError(f"{setting}: {exc}") from None


def parse_verifier_keys(text: str) -> list[Verifier]:
    """AUDIT_LOG_VERIFIER_KEY: one or more verifier keys (Go note format), separated by spaces."""
    return _keys(text, parse_verifier_key, "AUDIT_LOG_VERIFIER_KEY")


def parse_witness_keys(text: str) -> list[Verifier]:
    """AUDIT_LOG_WITNESS_KEYS: the witnesses' verifier keys (type 0x04 or 0x01), space-separated."""
    return _keys(text, parse_witness_key, "AUDIT_LOG_WITNESS_KEYS")
