"""The Idempotency-Key claim around a command (docs/CONTRACT.md; the port is `idempotency.py`).

no key               -> run it
key answered before  -> that answer again (`Replayed`), nothing run
key claimed now      -> run it; a success is recorded by the append itself (`Completion`),
                        a refusal of the command is recorded here, anything else releases
                        the key so that the same request is decided again next time.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from services.registry.domain.errors import DomainError
from services.registry.service_layer.idempotency import (
    Claim,
    ClaimLost,
    IdempotencyRecorder,
    KeyInFlight,
    StoredResponse,
)
from services.registry.service_layer.messages import (
    CommandContext,
    DescribeRefusal,
    Replayed,
    Reply,
    Result,
    UnrecordedRefusal,
)


async def claimed(
    keys: IdempotencyRecorder,
    describe_refusal: DescribeRefusal,
    context: CommandContext,
    run: Callable[[Claim | None], Awaitable[Result]],
) -> Reply:
    request = context.idempotency
    if request is None:
        try:
            return await run(None)
        except UnrecordedRefusal as refusal:
            raise refusal.reason from None
    claim = await keys.claim(context.caller.client_id, request.key, request.fingerprint)
    if isinstance(claim, StoredResponse):
        return Replayed(claim)
    try:
        return await run(claim)
    except UnrecordedRefusal as refusal:
        await keys.release(claim)
        raise refusal.reason from None
    except DomainError as exc:
        status_code, body = describe_refusal(exc)
        await keys.record_refusal(claim, status_code, body)
        raise
    except ClaimLost:
        raise KeyInFlight(request.key) from None
    except BaseException:
        await keys.release(claim)
        raise
