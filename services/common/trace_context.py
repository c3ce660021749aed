"""A command's W3C trace context, moved between the places that keep it on its way.

HTTP request -> the registry's command span -> the outbox row (`registry.outbox.trace_context`,
written in the append's transaction) -> the relay's span -> the Kafka record's `traceparent`
(and `tracestate`) header -> the projection worker's span (docs/CONTRACT.md B10).

A carrier is the propagator's dict: `{"traceparent": "00-<trace id>-<span id>-<flags>"}`, plus
`"tracestate"` when there is one. Parsing and formatting are the OTel API's W3C TraceContext
propagator's (the global propagator is not used: it may be configured to carry baggage too,
which is not the contract's); only the moves between columns and headers are here. No I/O.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping

from opentelemetry.context import Context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

PROPAGATOR = TraceContextTextMapPropagator()
# "traceparent" and "tracestate": nothing else is stored or forwarded.
FIELDS = frozenset(PROPAGATOR.fields)

Carrier = dict[str, str]
Headers = list[tuple[str, bytes]]


def carrier_of(context: Context | None = None) -> Carrier:
    """The carrier of `context`'s span (the current span by default); empty when there is no
    valid span (tracing off, nothing to continue)."""
    carrier: Carrier = {}
    PROPAGATOR.inject(carrier, context)
    return carrier


def context_of(carrier: Mapping[str, str]) -> Context:
    """A context whose span is the carrier's remote parent; empty for an empty or malformed carrier."""
    return PROPAGATOR.extract(carrier)


def normalised(carrier: Mapping[str, str]) -> Carrier:
    """The carrier as the propagator writes it, or empty if it does not parse: a value read
    from storage or the wire is forwarded only if it is a trace context."""
    return carrier_of(context_of(carrier)) if carrier else {}


def carrier_from_column(value: object) -> Carrier:
    """The outbox column (jsonb: a dict through the pool's codec, JSON text without it; NULL for
    rows written before migration 007 or by a registry without tracing) as a carrier."""
    if isinstance(value, str | bytes):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    if not isinstance(value, dict):
        return {}
    return {name: text for name, text in value.items() if name in FIELDS and isinstance(text, str)}


def headers_from_carrier(carrier: Mapping[str, str]) -> Headers:
    """Kafka record headers, in the W3C names (lower case), values as ASCII bytes."""
    return [(name, carrier[name].encode("ascii")) for name in sorted(FIELDS & carrier.keys())]


def carrier_from_headers(headers: Iterable[tuple[str, bytes]] | None) -> Carrier:
    """The trace context among a Kafka record's headers; other headers and undecodable values
    are left out (a record without them starts no trace of its own upstream)."""
    carrier: Carrier = {}
    for name, value in headers or ():
        if name in FIELDS and value is not None:
            try:
                carrier[name] = bytes(value).decode("ascii")
            except UnicodeDecodeError:
                continue
    return carrier
