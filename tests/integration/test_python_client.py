"""The Python client (coordreg_contracts.client) against the live stack: a whole agreement life,
each read after a write consistent with it by `min_position`, and refusals as typed exceptions."""

from __future__ import annotations

import pytest
from coordreg_contracts.client import Coordreg
from coordreg_contracts.client import answers as a
from coordreg_contracts.client import problems as p
from coordreg_contracts.commands import AmendAgreement, CloseTerm, ReportProgress, SignAgreement

from tests.support.builders import report_body, sign_body
from tests.support.stack import Stack

AMENDMENT = {
    "document_number": "12/QĐ-MTTQ-BTT",
    "reason": "Bổ sung nội dung chuyển đổi số",
    "effective_on": "2024-03-01",
    "changes": [{"op": "revise_obligation", "obligation_id": "nhan-dao", "cadence": "annual"}],
}
CLOSING = {"closed_on": "2027-12-31", "outcome": "completed", "summary": "Tổng kết giai đoạn 2023-2027"}


async def test_a_whole_life_through_the_client(stack: Stack) -> None:
    async with Coordreg(stack.registry_url, stack.projections_url, stack.token()) as client:
        registry, projections = client.registry, client.projections
        signed = await registry.sign(SignAgreement.model_validate(sign_body()))
        agreement_id = signed.agreement_id
        assert (signed.version, signed.status) == (1, "active")
        assert client.session.etags[agreement_id] == '"1"'

        amended = await registry.amend(agreement_id, AmendAgreement.model_validate(AMENDMENT))
        assert amended.version == 2 and client.session.etags[agreement_id] == '"2"'
        amend_request = [x for x in client.session.attempts if x[1].endswith("/amendments")]
        assert len(amend_request) == 1

        reported = await registry.report_progress(agreement_id, ReportProgress.model_validate(report_body()))
        assert reported.version == 3 and client.session.last_position == reported.position

        # Read-your-writes: each query passes the last command's position, so the report is there.
        held = await projections.list_party_obligations("hctd-hoa-binh")
        mine = [
            o for o in held.obligations if isinstance(o, a.HeldObligation) and o.agreement_id == agreement_id
        ]
        by_id = {o.obligation_id: o for o in mine}
        assert by_id["nhan-dao"].role == "supporter" and by_id["nhan-dao"].latest_report is not None
        assert by_id["nhan-dao"].latest_report.period == "2024"
        overdue = await projections.list_overdue_obligations("2024")
        assert ("nhan-dao", "mttq-hoa-binh") in {
            (o.obligation_id, o.lead_party_id) for o in overdue.obligations if o.agreement_id == agreement_id
        }, "the lead has not reported 2024"

        # A stale If-Match, given explicitly, is refused typed; the session's ETag is still right.
        with pytest.raises(p.PreconditionFailed) as stale:
            await registry.amend(agreement_id, AMENDMENT, if_match=1)
        assert stale.value.status == 412 and stale.value.type.endswith("/precondition-failed")
        assert stale.value.body["status"] == 412 and stale.value.title

        closed = await registry.close(agreement_id, CloseTerm.model_validate(CLOSING))
        assert (closed.version, closed.status) == (4, "closed")

        document = await projections.get_agreement(agreement_id)
        assert (document.version, document.status) == (4, "closed")
        assert document.closure is not None and document.closure.outcome == "completed"
        history = await projections.list_party_history("hctd-hoa-binh")
        lines = [h for h in history.events if h.agreement_id == agreement_id]
        assert [h.sequence for h in lines] == [1, 2, 3, 4]
        assert lines[-1].position == closed.position
        overdue = await projections.list_overdue_obligations("2024")
        assert agreement_id not in {o.agreement_id for o in overdue.obligations}, "closed: not overdue"
        every = await projections.list_party_obligations("hctd-hoa-binh", status="all")
        assert {o.status for o in every.obligations if o.agreement_id == agreement_id} == {"closed"}

        state = await registry.get_agreement(agreement_id)
        assert state.version == 4 and state.closure is not None and state.term.end.year == 2027
        events = await registry.list_agreement_events(agreement_id)
        assert [e.sequence for e in events.events] == [1, 2, 3, 4], "each command exactly once"
        assert [e.type.split(".")[-2] for e in events.events] == [
            "AgreementSigned",
            "AgreementAmended",
            "ProgressReported",
            "TermClosed",
        ]


async def test_refusals_are_typed_exceptions(stack: Stack) -> None:
    async with Coordreg(stack.registry_url, stack.projections_url, stack.token()) as client:
        registry = client.registry
        signed = await registry.sign(sign_body())
        with pytest.raises(p.RuleViolated) as rule:
            await registry.report_progress(signed.agreement_id, report_body(period="2031"))
        assert rule.value.status == 422 and rule.value.errors and not rule.value.retryable
        with pytest.raises(p.NotFound) as missing:
            await registry.get_agreement("no-such-agreement")
        assert missing.value.status == 404
        with pytest.raises(p.NotFound):
            await client.projections.get_agreement("no-such-agreement", consistent=False)
        with pytest.raises(p.Conflict) as taken:
            await registry.sign(
                sign_body(document_number=(await registry.get_agreement(signed.agreement_id)).document_number)
            )
        assert taken.value.existing_agreement_id == signed.agreement_id
        # A token without the scope: 403 of kind insufficient-scope, not retried.
        reader = Coordreg(stack.registry_url, stack.projections_url, stack.token(scopes=["agreements:read"]))
        with pytest.raises(p.InsufficientScope):
            await reader.registry.sign(sign_body())
        assert len(reader.session.attempts) == 1
        await reader.aclose()


async def test_a_replayed_command_has_one_effect(stack: Stack) -> None:
    """The same key sent twice (as a retry after a lost answer would): one event, the same answer."""
    async with Coordreg(stack.registry_url, stack.projections_url, stack.token()) as client:
        signed = await client.registry.sign(sign_body())
        body = report_body()
        first = await client.registry.report_progress(signed.agreement_id, body, idempotency_key="report-1")
        again = await client.registry.report_progress(signed.agreement_id, body, idempotency_key="report-1")
        assert first == again
        events = await client.registry.list_agreement_events(signed.agreement_id)
        assert len(events.events) == 2
        with pytest.raises(p.KeyReused):
            await client.registry.report_progress(
                signed.agreement_id, report_body(period="2025"), idempotency_key="report-1"
            )
