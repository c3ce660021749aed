"""The README's consumer's guide snippet, run as written on the records the registry publishes.

The records are the relay's Kafka values (`StoredEvent.message()`) and `envelope-signature`
headers of a real command sequence on the in-memory store (signed with the development key, as
`make run` signs); no broker is needed to check what a consumer does with them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from coordreg_contracts.commands import AmendAgreement, ReportProgress, SignAgreement
from coordreg_contracts.envelope import Envelope, canonical_json, envelope_hash
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.common.envelope_signatures import DEV_VERIFIER_KEY, EnvelopeSigner
from services.registry import bootstrap
from services.registry.service_layer.binding import Caller
from services.registry.service_layer.bus import CommandContext
from tests.support.builders import report_body, sign_body

README = Path(__file__).resolve().parents[2] / "README.md"


def guide_snippet() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Consumer's guide", 1)[1].split("\n## ", 1)[0]
    # The block that verifies records (the other one connects: tests/integration/test_consumer_guide_connect.py).
    [code] = [
        block
        for block in re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
        if "def receive" in block
    ]
    return str(code)


Receive = Callable[[bytes, bytes | None], None]
Record = tuple[bytes, bytes | None]


def receiver() -> tuple[Receive, dict[str, Any]]:
    namespace: dict[str, Any] = {}
    exec(compile(guide_snippet(), "README.md (consumer's guide)", "exec"), namespace)
    receive: Receive = namespace["receive"]
    return receive, namespace


async def published_records() -> list[Record]:
    registry, store = bootstrap.in_memory()
    context = CommandContext(Caller.in_process("guide-test"), "correlation", "causation")
    signed = await registry.bus.run(SignAgreement.model_validate(sign_body()), context)
    amendment = {
        "document_number": "12/QĐ-MTTQ",
        "reason": "Điều chỉnh",
        "effective_on": "2024-03-01",
        "changes": [{"op": "revise_obligation", "obligation_id": "nhan-dao", "cadence": "quarterly"}],
    }
    await registry.bus.run(AmendAgreement.model_validate(amendment), context, signed.agreement_id)
    await registry.bus.run(
        ReportProgress.model_validate(report_body(period="2024-Q1")), context, signed.agreement_id
    )
    return [
        (stored.message(), stored.signature.encode() if stored.signature else None)
        for stored in await store.load(signed.agreement_id)
    ]


async def test_the_snippet_applies_each_event_once_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    records = await published_records()
    receive, _ = receiver()
    for value, signature in [*records, *records[:2], records[2]]:  # redelivered, as after a relay crash
        receive(value, signature)
    assert capsys.readouterr().out.splitlines() == [
        "1 vn.gov.coordination.AgreementSigned.v1 AgreementSigned",
        "2 vn.gov.coordination.AgreementAmended.v1 AgreementAmended",
        "3 vn.gov.coordination.ProgressReported.v1 ProgressReported",
    ]


async def test_the_snippet_refuses_a_tampered_record_and_a_broken_chain() -> None:
    first, second, third = await published_records()
    receive, _ = receiver()
    receive(*first)
    tampered = second[0].replace(b'"cadence":"quarterly"', b'"cadence":"monthly"')
    assert tampered != second[0]
    with pytest.raises(ValueError, match="hash does not match"):
        receive(tampered, second[1])
    with pytest.raises(ValueError, match="does not follow"):
        receive(*third)  # the second event is missing


def test_the_snippet_trusts_the_key_the_registry_publishes_in_development() -> None:
    _, namespace = receiver()
    assert namespace["REGISTRY_KEYS"] == [DEV_VERIFIER_KEY]


async def test_the_snippet_refuses_a_correctly_chained_record_the_registry_did_not_sign() -> None:
    """A forger who recomputes the hash chain: unsigned, or signed with its own key (even under
    the registry key's name), it is refused; the registry's own record that follows is applied."""
    first, second, _ = await published_records()
    receive, namespace = receiver()
    receive(*first)
    real = Envelope.model_validate_json(second[0])
    forged_fields = {**real.model_dump(), "data": {**real.data, "cadence": "monthly"}}
    forged_fields["hash"] = envelope_hash(forged_fields)
    forged = canonical_json(forged_fields)
    forger = EnvelopeSigner("dev.coordreg.invalid/events", Ed25519PrivateKey.generate())
    for signature in (None, forger.sign(forged_fields["hash"]).encode(), second[1]):
        with pytest.raises(ValueError, match="not signed by the registry"):
            receive(forged, signature)
    assert namespace["applied"][real.subject][0] == 1, "nothing forged was applied"
    receive(*second)
    assert namespace["applied"][real.subject] == (2, real.hash)
