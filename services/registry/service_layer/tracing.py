"""The command's span, around its decision and append, retries included: the store writes this
span's trace context into the command's outbox rows (docs/CONTRACT.md B10)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from opentelemetry import trace

from services.registry.service_layer.messages import CommandContext, Result

# The OTel API only (no SDK here): without a provider configured in the process
# (services/common/tracing.py) its spans are no-ops. The tracer keeps the name it had when the
# bus was one module, so that dashboards and filters on it still match.
_tracer = trace.get_tracer("services.registry.service_layer.bus")


async def traced(command: object, context: CommandContext, step: Callable[[], Awaitable[Result]]) -> Result:
    with _tracer.start_as_current_span(
        f"command {type(command).__name__}",
        attributes={"coordreg.correlation_id": context.correlation_id},
    ) as span:
        result = await step()
        span.set_attributes(result.span_attributes())
        return result
