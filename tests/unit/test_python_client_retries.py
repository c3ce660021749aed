"""The Python client's retry rules as pure logic, over httpx.MockTransport (no service involved):
one Idempotency-Key per command reused on every retry, Retry-After honoured, retries bounded,
retryable and final refusals told apart by the problem `type` alone."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest
from coordreg_contracts.client import RegistryClient, RetriesExhausted, RetryPolicy
from coordreg_contracts.client import problems as p
from coordreg_contracts.client.retry import parse_retry_after

RESULT = {"agreement_id": "a1", "version": 1, "position": 7, "status": "active"}
BASE = "https://coordination-registry.gov.vn/problems/"


def problem(status: int, kind: str, retry_after: str | None = None, detail: str = "x") -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after else {}
    body = {"type": BASE + kind, "title": kind, "status": status, "detail": detail}
    return httpx.Response(status, json=body, headers=headers)


def client(
    answers: list[httpx.Response | Exception],
    seen: list[httpx.Request],
    sleeps: list[float],
    policy: RetryPolicy | None = None,
) -> RegistryClient:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    return RegistryClient(
        "http://registry",
        "t0ken",
        transport=httpx.MockTransport(handle),
        sleep=sleep,
        policy=policy or RetryPolicy(max_attempts=10, total_seconds=60),
    )


async def test_one_key_per_command_reused_on_every_retry_with_retry_after_honoured() -> None:
    seen: list[httpx.Request] = []
    sleeps: list[float] = []
    answers: list[httpx.Response | Exception] = [
        problem(503, "unavailable", "1"),
        httpx.ConnectError("refused"),
        problem(409, "idempotency-key-in-flight", "2"),
        problem(409, "busy", "1"),
        httpx.Response(201, json=RESULT, headers={"ETag": '"1"'}),
        httpx.Response(201, json={**RESULT, "position": 8}, headers={"ETag": '"2"'}),
    ]
    registry = client(answers, seen, sleeps)
    first = await registry.sign({"title": "one"})
    second = await registry.sign({"title": "two"})
    keys = [r.headers["idempotency-key"] for r in seen]
    assert len(set(keys[:5])) == 1 and keys[5] != keys[0], keys
    assert (
        sleeps[0] == 1 and sleeps[2] == 2 and sleeps[3] == 1 and 0.2 <= sleeps[1] <= 0.4
    )  # backoff of attempt 2: 0.4 s, jittered
    assert all(r.headers["authorization"] == "Bearer t0ken" for r in seen)
    assert (first.position, second.position) == (7, 8)
    assert registry.session.last_position == 8 and registry.session.etags["a1"] == '"2"'


async def test_an_explicit_key_is_sent_as_given() -> None:
    seen: list[httpx.Request] = []
    registry = client([httpx.Response(201, json=RESULT)], seen, [])
    await registry.sign({}, idempotency_key="my-own-key")
    assert seen[0].headers["idempotency-key"] == "my-own-key"


@pytest.mark.parametrize(
    ("answer", "raised"),
    [
        (problem(412, "precondition-failed"), p.PreconditionFailed),
        (problem(409, "conflict", detail="the agreement is closed"), p.Conflict),
        (problem(422, "rule-violated"), p.RuleViolated),
        (problem(422, "idempotency-key-reused"), p.KeyReused),
        (problem(404, "not-found"), p.NotFound),
        (problem(403, "party-not-held"), p.PartyNotHeld),
        (problem(500, "internal"), p.Internal),
        (httpx.Response(418, text="teapot"), p.Problem),
    ],
)
async def test_a_final_refusal_is_raised_at_once_typed(
    answer: httpx.Response, raised: type[p.Problem]
) -> None:
    seen: list[httpx.Request] = []
    registry = client([answer], seen, [])
    with pytest.raises(raised) as caught:
        await registry.sign({})
    assert len(seen) == 1 and not caught.value.retryable
    assert caught.value.status == answer.status_code
    if answer.headers.get("content-type") == "application/json":
        assert caught.value.body == answer.json() and caught.value.type == answer.json()["type"]
        assert caught.value.title and caught.value.detail


async def test_retries_are_bounded_by_attempts_and_by_total_time() -> None:
    seen: list[httpx.Request] = []
    sleeps: list[float] = []
    registry = client(
        [problem(503, "unavailable", "1") for _ in range(5)],
        seen,
        sleeps,
        RetryPolicy(max_attempts=3, total_seconds=60),
    )
    with pytest.raises(RetriesExhausted) as caught:
        await registry.sign({})
    assert len(seen) == 3 and caught.value.attempts == 3 and isinstance(caught.value.last, p.Unavailable)

    seen, sleeps = [], []
    registry = client(
        [problem(503, "unavailable", "30") for _ in range(5)],
        seen,
        sleeps,
        RetryPolicy(max_attempts=10, total_seconds=20, max_delay_seconds=60),
    )
    with pytest.raises(RetriesExhausted):
        await registry.sign({})
    assert len(seen) == 1 and sleeps == [], "a wait that would end past the total time is not taken"


async def test_a_gateway_error_without_a_problem_is_retried() -> None:
    seen: list[httpx.Request] = []
    answers: list[httpx.Response | Exception] = [
        httpx.Response(503, text="<html>No server is available</html>"),
        httpx.Response(201, json=RESULT),
    ]
    registry = client(answers, seen, [])
    assert (await registry.sign({})).position == 7 and len(seen) == 2


async def test_amend_sends_the_last_etag_or_the_one_given() -> None:
    seen: list[httpx.Request] = []
    agreement = {"agreement_id": "a1", "version": 3}
    answers = [
        httpx.Response(201, json=RESULT, headers={"ETag": '"1"'}),
        httpx.Response(200, json={**RESULT, "version": 2}, headers={"ETag": '"2"'}),
        httpx.Response(200, json={**RESULT, "version": 3}, headers={"ETag": '"3"'}),
        httpx.Response(200, json={**RESULT, "version": 4}, headers={"ETag": '"4"'}),
    ]
    registry = client(list(answers), seen, [])
    await registry.sign({})
    await registry.amend("a1", {})
    await registry.amend("a1", {}, if_match='W/"9"')
    await registry.amend("a1", {}, use_last_etag=False)
    assert [r.headers.get("if-match") for r in seen[1:]] == ['"1"', '"9"', None]
    assert registry.session.etags["a1"] == '"4"' and agreement


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("1", 1.0),
        (" 120 ", 120.0),
        ("Wed, 21 Oct 2026 07:28:10 GMT", 10.0),
        ("soon", None),
        (None, None),
        ("١", None),
        ("-1", None),
    ],
)
def test_retry_after_is_seconds_or_an_http_date(value: str | None, seconds: float | None) -> None:
    now = datetime(2026, 10, 21, 7, 28, 0, tzinfo=UTC)
    assert parse_retry_after(value, now) == seconds


def test_retryable_is_decided_by_the_type_alone() -> None:
    retryable: Callable[[str], bool] = lambda kind: p.problem_of(503, {"type": BASE + kind}).retryable  # noqa: E731
    assert [
        k
        for k in (
            "unavailable",
            "not-yet-consistent",
            "idempotency-key-in-flight",
            "rate-limited",
            "busy",
            "conflict",
            "internal",
            "validation",
        )
        if retryable(k)
    ] == ["unavailable", "not-yet-consistent", "idempotency-key-in-flight", "rate-limited", "busy"]
    assert not p.problem_of(503, {"type": "https://example.org/other", "detail": "unavailable"}).retryable
