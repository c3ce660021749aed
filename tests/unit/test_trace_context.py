"""The trace context's moves between the places that keep it (services/common/trace_context.py),
the relay's record headers, and the JSON lines the file exporter writes. No I/O: spans go to a
provider of the test's own (the process's global one is never set here) and into a StringIO."""

from __future__ import annotations

import io
import json

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState

from services.common import tracing
from services.common.settings import ServiceSettings
from services.common.trace_context import (
    carrier_from_column,
    carrier_from_headers,
    carrier_of,
    context_of,
    headers_from_carrier,
    normalised,
)
from services.registry.adapters.relay import OutboxEvent, OutboxRelay

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{SPAN_ID}-01"
CARRIER = {"traceparent": TRACEPARENT, "tracestate": "congo=t61rcWkgMzE"}


def test_a_carrier_round_trips_through_the_w3c_propagator() -> None:
    span_context = trace.get_current_span(context_of(CARRIER)).get_span_context()
    assert span_context.is_remote and span_context.is_valid
    assert f"{span_context.trace_id:032x}" == TRACE_ID and f"{span_context.span_id:016x}" == SPAN_ID
    assert span_context.trace_flags.sampled
    assert carrier_of(context_of(CARRIER)) == CARRIER


def test_no_span_and_malformed_values_make_an_empty_carrier() -> None:
    # Tracing off: the current span is the invalid one, and nothing is written to the outbox.
    assert carrier_of() == {}
    for broken in ({"traceparent": "00-xyz"}, {"traceparent": f"00-{'0' * 32}-{SPAN_ID}-01"}, {}):
        assert normalised(broken) == {}
    # A tracestate alone is no trace context.
    assert normalised({"tracestate": "congo=t61rcWkgMzE"}) == {}
    assert normalised(CARRIER) == CARRIER


@pytest.mark.parametrize(
    ("column", "carrier"),
    [
        (None, {}),  # rows queued before migration 007, or by a registry without tracing
        (CARRIER, CARRIER),  # jsonb through the pool's codec
        (json.dumps(CARRIER), CARRIER),  # jsonb as text, without the codec
        ({"traceparent": TRACEPARENT, "baggage": "k=v", "n": 1}, {"traceparent": TRACEPARENT}),
        ("not json", {}),
        ([TRACEPARENT], {}),
    ],
)
def test_the_outbox_column_is_read_as_a_carrier(column: object, carrier: dict[str, str]) -> None:
    assert carrier_from_column(column) == carrier


def test_headers_carry_the_carrier_and_give_it_back() -> None:
    headers = headers_from_carrier(CARRIER)
    assert headers == [("traceparent", TRACEPARENT.encode()), ("tracestate", b"congo=t61rcWkgMzE")]
    received = [("content-type", b"application/cloudevents+json"), *headers, ("dlq-reason", b"x")]
    assert carrier_from_headers(received) == CARRIER
    assert headers_from_carrier({}) == [] and carrier_from_headers(None) == {}
    # An undecodable value is left out rather than failing the record.
    assert carrier_from_headers([("traceparent", "é".encode())]) == {}


def _outbox_event(trace_context: dict[str, str]) -> OutboxEvent:
    return OutboxEvent(7, "a-1", 1, '{"hash":"h","prevhash":"","sequence":1}', trace_context)


def test_an_untraced_relay_forwards_the_stored_context_unchanged() -> None:
    """A relay without tracing (this process configures none) still carries the command's
    trace on: the stored context becomes the record's headers, validated, or no header."""
    assert not tracing.enabled()
    relay = OutboxRelay(None, "unused:9092", "t")  # type: ignore[arg-type]
    span, headers = relay._trace(_outbox_event(CARRIER))
    assert span is None and headers == headers_from_carrier(CARRIER)
    assert relay._trace(_outbox_event({}))[1] == []
    assert relay._trace(_outbox_event({"traceparent": "garbage"}))[1] == []
    # The value is the stored envelope with its position, whatever the trace context.
    assert _outbox_event(CARRIER).message() == _outbox_event({}).message()


def test_the_json_lines_exporter_writes_one_span_per_line_with_its_parent() -> None:
    out = io.StringIO()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(tracing.json_lines_exporter(out, "svc")))
    parent = NonRecordingSpan(
        SpanContext(int(TRACE_ID, 16), int(SPAN_ID, 16), True, TraceFlags(TraceFlags.SAMPLED), TraceState())
    )
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("outer", context=trace.set_span_in_context(parent)) as outer:
        child_carrier = carrier_of()
        with tracer.start_as_current_span("inner"):
            pass
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["name"] for line in lines] == ["inner", "outer"]
    inner, outer_line = lines
    assert outer_line["context"]["trace_id"] == f"0x{TRACE_ID}" and outer_line["parent_id"] == f"0x{SPAN_ID}"
    assert inner["parent_id"] == outer_line["context"]["span_id"]
    # What the store would write into the outbox for a command under `outer`.
    assert child_carrier == {"traceparent": f"00-{TRACE_ID}-{outer.get_span_context().span_id:016x}-01"}
    provider.shutdown()


def test_the_provider_follows_the_settings() -> None:
    assert tracing.build_provider(ServiceSettings(), "svc") is None  # the default: none
    with pytest.raises(ValueError, match="tracing_file"):
        tracing.build_provider(ServiceSettings(tracing_exporter="file"), "svc")
    provider = tracing.build_provider(
        ServiceSettings(tracing_exporter="otlp", tracing_service_name="named"), "svc"
    )
    assert provider is not None
    assert provider.resource.attributes["service.name"] == "named"
    provider.shutdown()
