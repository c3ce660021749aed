"""A span per record the projection worker applied, continuing the trace its record carries.

The relay puts the W3C trace context of its span into each record's `traceparent` header
(docs/CONTRACT.md B10); here it becomes the parent of the record's span, so one trace runs
from the HTTP request through the registry, the relay and the worker. A batch's records are
applied together, in one transaction with their offsets: each record's span starts with the
batch and ends at its commit, and says what became of the record (applied, duplicate, parked,
or dead-lettered).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from aiokafka import TopicPartition
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from services.common import tracing
from services.common.trace_context import carrier_from_headers, context_of
from services.projections.readmodel.apply import Applied

_tracer = trace.get_tracer(__name__)


def batch_started() -> int:
    """The start time of the batch's spans (epoch nanoseconds, the SDK's clock)."""
    return time.time_ns()


def trace_applied(
    records: Sequence[tuple[TopicPartition, Any]],
    results: Sequence[Applied | Exception],
    started_ns: int,
) -> None:
    """Records the committed batch's spans; nothing at all when this process does not trace."""
    if not tracing.enabled():
        return
    ended_ns = time.time_ns()
    for (tp, record), result in zip(records, results, strict=True):
        span = _tracer.start_span(
            f"process {tp.topic}",
            context=context_of(carrier_from_headers(record.headers)),
            kind=SpanKind.CONSUMER,
            start_time=started_ns,
            attributes={
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "messaging.destination.name": tp.topic,
                "messaging.destination.partition.id": str(tp.partition),
                "messaging.kafka.offset": record.offset,
            },
        )
        if isinstance(result, Exception):
            span.record_exception(result)
            span.set_status(StatusCode.ERROR, "dead-lettered")
        else:
            span.set_attribute("coordreg.outcome", result.outcome.value)
            span.set_attribute("coordreg.agreement_id", result.stream_id)
            span.set_attribute("coordreg.sequence", result.sequence)
            span.set_attribute("coordreg.position", result.position)
        span.end(end_time=ended_ns)
