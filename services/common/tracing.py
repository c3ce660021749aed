"""OpenTelemetry tracing: one TracerProvider per process, built from the service's settings.

`tracing_exporter=none` (the default) configures nothing: no provider, no thread; the code's
spans are the OTel API's no-op spans, and FastAPI (whose native OpenTelemetry support makes
the HTTP server spans) sees no provider and skips its own. Otherwise `configure` installs the
process's provider once (the API allows one per process):

- `otlp`: OTLP over HTTP/protobuf to `tracing_otlp_endpoint`, in batches from a background
  thread, so a slow collector never holds up a request;
- `console` and `file`: one JSON object per line (the SDK's own span JSON), written as each
  span ends, so nothing is left in a buffer when a process is killed; for development and
  the tests (tests/e2e/test_tracing.py), not for load.

The SDK still reads its own standard variables (OTEL_EXPORTER_OTLP_HEADERS for a collector's
credentials, OTEL_BSP_* for the batch sizes): docs/OPERATIONS.md, "Tracing".
"""

from __future__ import annotations

import sys
from typing import IO

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from services.common.settings import ServiceSettings

_provider: TracerProvider | None = None


def enabled() -> bool:
    """Whether this process records spans (a hot path may skip building them when not)."""
    return _provider is not None


def span_line(span: ReadableSpan) -> str:
    line: str = span.to_json(indent=None)
    return line + "\n"


def json_lines_exporter(out: IO[str], service_name: str) -> SpanExporter:
    """The console exporter of the SDK, writing one span per line to `out` (and flushing it)."""
    return ConsoleSpanExporter(service_name=service_name, out=out, formatter=span_line)


def _processor(settings: ServiceSettings, service_name: str) -> SpanProcessor:
    if settings.tracing_exporter == "otlp":
        # Imported only here: the protobuf machinery is not loaded by a process that never exports.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = settings.tracing_otlp_endpoint.rstrip("/") + "/v1/traces"
        return BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint))
    if settings.tracing_exporter == "console":
        return SimpleSpanProcessor(json_lines_exporter(sys.stdout, service_name))
    if settings.tracing_exporter == "file":
        if not settings.tracing_file:
            raise ValueError("tracing_exporter=file needs tracing_file, the path spans are appended to")
        # Line-buffered and appended to: several processes may share one file, a line each.
        out = open(settings.tracing_file, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
        return SimpleSpanProcessor(json_lines_exporter(out, service_name))
    raise ValueError(f"unknown tracing exporter {settings.tracing_exporter!r}")


def build_provider(settings: ServiceSettings, default_service_name: str) -> TracerProvider | None:
    """The provider the settings ask for (None for `none`), not installed anywhere."""
    if settings.tracing_exporter == "none":
        return None
    service_name = settings.tracing_service_name or default_service_name
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: service_name}),
        # A trace begun upstream keeps its caller's decision; a new one is kept at the ratio.
        sampler=ParentBased(TraceIdRatioBased(settings.tracing_sample_ratio)),
    )
    provider.add_span_processor(_processor(settings, service_name))
    return provider


def configure(settings: ServiceSettings, default_service_name: str) -> None:
    """Installs this process's provider once; later calls (another app built in the same
    process, as the tests do) change nothing. The provider flushes its spans at exit."""
    global _provider
    if _provider is not None:
        return
    provider = build_provider(settings, default_service_name)
    if provider is None:
        return
    trace.set_tracer_provider(provider)
    _provider = provider
