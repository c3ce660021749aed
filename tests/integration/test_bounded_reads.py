"""Bounded work on the real stack (docs/CONTRACT.md B7, B11; docs/SECURITY.md; ADR 0005).

Every list pages with a keyset cursor, walked here while commands keep appending: each item
that existed when the walk began comes exactly once, and nothing comes twice. Pages of events
and of log leaves are bounded in bytes as well (records near the 256 KiB body limit). Failed
authentications are limited per source address before any signature is checked: proven by the
registry's own count of the signatures it checked, not by timing.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from prometheus_client.parser import text_string_to_metric_families

from deploy.tokens import mint
from services.common.auth import ALL_SCOPES
from tests.support.builders import report_body, sign_body
from tests.support.kafka import Brokers
from tests.support.log import integrate
from tests.support.stack import TEST_CLIENT, TEST_PARTIES, Stack, running_stack

Page = Callable[[str | None], Awaitable[tuple[list[Any], str | None]]]


async def walk(page: Page, during: Callable[[], Awaitable[None]] | None = None) -> list[Any]:
    """Every item of a paged list, following `next_cursor`; `during` runs between pages."""
    items: list[Any] = []
    cursor: str | None = None
    while True:
        found, cursor = await page(cursor)
        items += found
        if cursor is None:
            return items
        if during is not None:
            await during()


def paged(cursor: str | None, **params: str | int) -> dict[str, str | int]:
    return {**params, **({"cursor": cursor} if cursor else {})}


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    return body


async def report(stack: Stack, agreement_id: str) -> int:
    response = await stack.registry.post(
        f"/v1/agreements/{agreement_id}/progress-reports", json=report_body()
    )
    assert response.status_code == 201, response.text
    return int(response.json()["position"])


# --- registry: a stream's events ------------------------------------------------------------------


async def test_an_agreements_events_page_by_sequence_under_concurrent_appends(stack: Stack) -> None:
    agreement = (await stack.sign(sign_body()))["agreement_id"]
    for _ in range(11):
        await report(stack, agreement)
    path = f"/v1/agreements/{agreement}/events"

    async def page(cursor: str | None) -> tuple[list[Any], str | None]:
        response = await stack.registry.get(path, params=paged(cursor, limit=3))
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["events"]) <= 3
        return body["events"], body["next_cursor"]

    async def append_two() -> None:
        await asyncio.gather(report(stack, agreement), report(stack, agreement))

    walked = [e["sequence"] for e in await walk(page, append_two)]
    # The 12 events before the walk and some appended during it, each once and in order: a
    # keyset on the sequence neither repeats nor skips however many are appended meanwhile.
    assert walked == list(range(1, len(walked) + 1)) and len(walked) >= 12
    total = await stack.pool.fetchval(
        "SELECT count(*) FROM registry.events WHERE agreement_id = $1", agreement
    )
    assert total > 12  # the appends did happen during the walk
    # A client that sends neither limit nor cursor gets the whole stream, as before paging.
    whole = (await stack.registry.get(path)).json()
    assert [e["sequence"] for e in whole["events"]] == list(range(1, total + 1)) and whole[
        "next_cursor"
    ] is None
    # The envelopes are the stored ones, byte for byte as before (the Kafka record's content).
    stored = await stack.pool.fetchval(
        "SELECT envelope FROM registry.events WHERE agreement_id = $1 AND sequence = 1", agreement
    )
    first = dict(whole["events"][0])
    assert first.pop("position") and first == json.loads(stored)


async def test_a_party_streams_events_page_too(stack: Stack) -> None:
    party = "so-noi-vu-bac-kan"
    await stack.register_party(party)
    for n in range(4):
        response = await stack.registry.post(
            f"/v1/parties/{party}/rename", json={"name": f"Sở Nội vụ {n}", "effective_on": f"202{n}-01-01"}
        )
        assert response.status_code == 200, response.text

    async def page(cursor: str | None) -> tuple[list[Any], str | None]:
        params = paged(cursor, limit=2)
        body = (await stack.registry.get(f"/v1/parties/{party}/events", params=params)).json()
        return body["events"], body["next_cursor"]

    assert [e["sequence"] for e in await walk(page)] == [1, 2, 3, 4, 5]


async def test_event_pages_refuse_what_no_page_gave(stack: Stack) -> None:
    agreement = (await stack.sign(sign_body()))["agreement_id"]
    path = f"/v1/agreements/{agreement}/events"
    for cursor in ("abc", "-1", "1\n", "٣", "2147483648", "1.5"):
        problem = assert_problem(await stack.registry.get(path, params={"cursor": cursor}), 400)
        assert problem["type"].endswith("/bad-request")
    for limit in (0, 501, -1):
        assert_problem(await stack.registry.get(path, params={"limit": limit}), 422)
    assert_problem(await stack.registry.get(path, params={"cursor": "x" * 41}), 422)
    # Past the end: an empty last page; an unknown stream stays 404 with a cursor too.
    assert (await stack.registry.get(path, params={"cursor": "7"})).json() == {
        "events": [],
        "next_cursor": None,
    }
    assert_problem(await stack.registry.get("/v1/agreements/nope/events", params={"cursor": "1"}), 404)
    assert_problem(await stack.registry.get("/v1/parties/nobody/events"), 404)


def large_obligations(prefix: str, room: int = 220 * 1024) -> list[dict[str, Any]]:
    """Obligations with 10,000-character descriptions in Vietnamese (most letters two or three
    bytes in UTF-8), about `room` bytes of them: a command just under the 256 KiB body limit."""
    template = sign_body()["obligations"][0]
    words = "Phối hợp vận động quỹ “Vì người nghèo”, cứu trợ đột xuất và an sinh xã hội; "
    description = (words * (10_000 // len(words) + 1))[:10_000]
    obligations: list[dict[str, Any]] = []
    while len(json.dumps(obligations, ensure_ascii=False).encode()) < room:
        obligations.append(
            {**template, "obligation_id": f"{prefix}-{len(obligations)}", "description": description}
        )
    return obligations


def large_signing() -> dict[str, Any]:
    body = sign_body()
    return {**body, "obligations": [*body["obligations"], *large_obligations("nv")]}


def large_amendment(n: int) -> dict[str, Any]:
    return {
        "document_number": f"{n}/QĐ-SĐ",
        "reason": "Bổ sung nhiệm vụ",
        "effective_on": "2024-01-01",
        "changes": [{"op": "add_obligation", "obligation": o} for o in large_obligations(f"them-{n}")],
    }


@pytest.fixture
async def small_pages(database_url: str, kafka: Brokers, topic: str) -> AsyncIterator[Stack]:
    """The registry alone, with pages of at most 500 KiB: two of the largest events."""
    options = {"max_page_bytes": 500 * 1024}
    async with running_stack(
        database_url, kafka, topic, relay=False, projections=False, registry_options=options
    ) as stack:
        yield stack


async def test_pages_of_events_and_of_leaves_are_bounded_in_bytes(small_pages: Stack) -> None:
    stack = small_pages
    budget = 500 * 1024
    agreement = (await stack.sign(large_signing()))["agreement_id"]
    for _ in range(5):  # each report is small, each amendment near the limit: a mixed stream
        await report(stack, agreement)
    for n in range(4):
        response = await stack.registry.post(
            f"/v1/agreements/{agreement}/amendments", json=large_amendment(n)
        )
        assert response.status_code == 200, response.text
    sizes = [
        len(text.encode())
        for text in await stack.pool.fetchval(
            "SELECT array_agg(envelope ORDER BY sequence) FROM registry.events WHERE agreement_id = $1",
            agreement,
        )
    ]
    assert max(sizes) > 200 * 1024 and sum(sizes) > 2 * budget  # large records, more than a page

    pages: list[httpx.Response] = []

    async def page(cursor: str | None) -> tuple[list[Any], str | None]:
        response = await stack.registry.get(f"/v1/agreements/{agreement}/events", params=paged(cursor))
        assert response.status_code == 200, response.text
        pages.append(response)
        return response.json()["events"], response.json()["next_cursor"]

    walked = await walk(page)
    assert [e["sequence"] for e in walked] == list(range(1, len(sizes) + 1))
    assert len(pages) >= 3  # the bytes, not the default limit of 500, ended the pages
    for response in pages:
        events = response.json()["events"]
        # The items' bytes stay within the budget, unless a page holds one item alone.
        assert len(response.content) <= budget + 100 or len(events) == 1

    # The log's leaves: a range of every event, answered in parts that each fit the budget.
    await integrate(stack.pool)
    size = await stack.pool.fetchval("SELECT count(*) FROM registry.tree_leaves")
    leaves: list[dict[str, Any]] = []
    start, calls = 0, 0
    while True:
        response = await stack.registry.get("/v1/log/leaves", params={"start": start, "end": size})
        assert response.status_code == 200, response.text
        body, calls = response.json(), calls + 1
        assert len(response.content) <= budget + 100 or len(body["leaves"]) == 1
        leaves += body["leaves"]
        if body["next_start"] is None:
            break
        assert body["next_start"] == body["leaves"][-1]["leaf_index"] + 1
        start = body["next_start"]
    assert [leaf["leaf_index"] for leaf in leaves] == list(range(size)) and calls >= 3
    # Each record is the event's Kafka record, whole (its hash is the leaf hash).
    rows = await stack.pool.fetch(
        "SELECT l.leaf_index, e.envelope FROM registry.tree_leaves l JOIN registry.events e USING (position)"
    )
    for row in rows:
        record = json.loads(leaves[row["leaf_index"]]["record"])
        record.pop("position")
        assert record == json.loads(row["envelope"])
    # A budget smaller than one record still answers that one record, and says where to go on.
    largest = max(range(size), key=lambda i: len(leaves[i]["record"]))
    one = (await stack.registry.get("/v1/log/leaves", params={"start": largest, "end": size})).json()
    assert len(one["leaves"]) >= 1 and one["leaves"][0]["leaf_index"] == largest


async def test_a_budget_below_one_record_still_returns_it(
    database_url: str, kafka: Brokers, topic: str
) -> None:
    options = {"max_page_bytes": 64 * 1024}
    async with running_stack(
        database_url, kafka, topic, relay=False, projections=False, registry_options=options
    ) as stack:
        agreement = (await stack.sign(large_signing()))["agreement_id"]
        await report(stack, agreement)
        body = (await stack.registry.get(f"/v1/agreements/{agreement}/events")).json()
        assert [e["sequence"] for e in body["events"]] == [1] and body["next_cursor"] == "1"
        body = (await stack.registry.get(f"/v1/agreements/{agreement}/events", params={"cursor": "1"})).json()
        assert [e["sequence"] for e in body["events"]] == [2] and body["next_cursor"] is None
        await integrate(stack.pool)
        body = (await stack.registry.get("/v1/log/leaves", params={"start": 0, "end": 2})).json()
        assert [leaf["leaf_index"] for leaf in body["leaves"]] == [0] and body["next_start"] == 1


# --- projections: obligations and the overdue report ----------------------------------------------


def signing(number: int) -> dict[str, Any]:
    """The Hòa Bình programme again: the Red Cross leads one obligation and supports the other."""
    return sign_body(document_number=f"{number:03d}/CTPH-MTTQ-HCTĐ")


RED_CROSS = "hctd-hoa-binh"


async def test_obligations_and_the_overdue_report_page_by_key_under_concurrent_signings(
    stack: Stack,
) -> None:
    position = 0
    for n in range(0, 40, 5):  # every fifth number: the signings during the walk fall between
        position = (await stack.sign(signing(n)))["position"]
    await stack.wait_for_position(position)
    before = (await stack.projections.get(f"/v1/parties/{RED_CROSS}/obligations")).json()
    assert before["next_cursor"] is None and len(before["obligations"]) == 16
    overdue_before = (await stack.projections.get("/v1/reports/overdue", params={"period": "2024"})).json()
    assert overdue_before["next_cursor"] is None and len(overdue_before["obligations"]) >= 8

    numbers: list[int] = []

    async def sign_two() -> None:
        # Two signings between pages while numbers last (each adds two obligations), so that
        # the walk meets new rows on both sides of its cursor and still ends.
        for n in numbers[:2]:
            await stack.wait_for_position((await stack.sign(signing(n)))["position"])
        del numbers[:2]

    async def obligations(cursor: str | None) -> tuple[list[Any], str | None]:
        params = paged(cursor, limit=3)
        response = await stack.projections.get(f"/v1/parties/{RED_CROSS}/obligations", params=params)
        assert response.status_code == 200, response.text
        assert len(response.json()["obligations"]) <= 3
        return response.json()["obligations"], response.json()["next_cursor"]

    async def overdue(cursor: str | None) -> tuple[list[Any], str | None]:
        params = paged(cursor, period="2024", limit=2)
        response = await stack.projections.get("/v1/reports/overdue", params=params)
        assert response.status_code == 200, response.text
        assert len(response.json()["obligations"]) <= 2
        return response.json()["obligations"], response.json()["next_cursor"]

    for listing, first, key in (
        (obligations, before["obligations"], ("agreement_id", "obligation_id")),
        (overdue, overdue_before["obligations"], ("agreement_id", "obligation_id", "lead_party_id")),
    ):
        # Numbers between the first signings': 1-19 during one walk, 21-39 during the other.
        numbers[:] = (
            [n for n in range(1, 20) if n % 5]
            if listing is obligations
            else [n for n in range(21, 40) if n % 5]
        )
        walked = await walk(listing, sign_two)
        keys = [tuple(item[k] for k in key) for item in walked]
        assert len(keys) == len(set(keys))  # nothing twice
        assert {tuple(item[k] for k in key) for item in first} <= set(keys)  # nothing missing
        order = [(item["document_number"], item["agreement_id"], item["obligation_id"]) for item in walked]
        assert order == sorted(order)  # the contract's order, across pages
    signed = await stack.pool.fetchval("SELECT count(*) FROM registry.events")
    assert signed > 8  # the walks did run beside new signings


async def test_obligation_and_overdue_cursors_refuse_what_no_page_gave(stack: Stack) -> None:
    def encoded(value: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    bad = [
        "not base64!",
        "YQ",  # "a": not JSON
        encoded(["a", "b"]),  # too few parts
        encoded(["a", "b", 3]),
        encoded(["a\u0000", "b", "c"]),  # no text PostgreSQL can hold
        encoded({"a": 1}),
        "eyJ\n",
    ]
    for cursor in bad:
        response = await stack.projections.get(
            "/v1/parties/mttq-hoa-binh/obligations", params={"cursor": cursor}
        )
        assert assert_problem(response, 400)["type"].endswith("/bad-request"), cursor
    lone_surrogate = base64.urlsafe_b64encode(b'["\\ud800","b","c","d"]').rstrip(b"=").decode()
    for cursor in (encoded(["a", "b", "c"]), lone_surrogate):  # three parts: an obligations cursor
        response = await stack.projections.get(
            "/v1/reports/overdue", params={"period": "2024", "cursor": cursor}
        )
        assert_problem(response, 400)
    for limit in (0, 501):
        assert_problem(
            await stack.projections.get("/v1/reports/overdue", params={"period": "2024", "limit": limit}), 422
        )


# --- failed authentication, limited per address before the signature check ------------------------


def signature_checks(metrics: str) -> dict[str, float]:
    found = {"accepted": 0.0, "refused": 0.0}
    for family in text_string_to_metric_families(metrics):
        if family.name == "auth_signature_checks":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    found[sample.labels["outcome"]] = sample.value
    return found


def forged_token() -> str:
    """The development key's kid and algorithm, signed with another key: it costs a signature check."""
    return mint(TEST_CLIENT, ALL_SCOPES, TEST_PARTIES, key=ec.generate_private_key(ec.SECP256R1()))


@pytest.fixture
async def guarded(database_url: str, kafka: Brokers, topic: str) -> AsyncIterator[Stack]:
    options = {"auth_failure_burst": 5, "auth_failure_rate_per_second": 0.001}
    async with running_stack(
        database_url, kafka, topic, relay=False, projections=False, registry_options=options
    ) as stack:
        yield stack


def client_from(stack: Stack, address: str, token: str | None = None) -> httpx.AsyncClient:
    """A client whose connections leave from `address` (any 127.0.0.0/8 address is this host)."""
    headers = Stack.bearer(token) if token else {}
    transport = httpx.AsyncHTTPTransport(local_address=address)
    return httpx.AsyncClient(base_url=stack.registry_url, transport=transport, headers=headers, timeout=30)


async def test_failed_authentications_are_limited_per_address_before_the_signature_check(
    guarded: Stack,
) -> None:
    stack = guarded
    agreement = (await stack.sign(sign_body()))["agreement_id"]  # the stack's token, verified now
    path = f"/v1/agreements/{agreement}"

    async def checks() -> dict[str, float]:
        return signature_checks((await stack.registry.get("/metrics")).text)

    start = await checks()
    async with client_from(stack, "127.0.0.1") as attacker:
        for _ in range(4):
            assert_problem(await attacker.get(path, headers=Stack.bearer(forged_token())), 401)
        assert_problem(await attacker.get(path), 401)  # no token at all: a failure too (the fifth)
        assert (await checks())["refused"] - start["refused"] == 4
        for _ in range(20):
            response = await attacker.get(path, headers=Stack.bearer(forged_token()))
            refused = assert_problem(response, 429)
            assert refused["type"].endswith("/rate-limited") and "failed authentications" in refused["detail"]
            assert int(response.headers["Retry-After"]) >= 1
        # Twenty forged tokens later, not one more signature was checked: refused before it.
        assert (await checks())["refused"] - start["refused"] == 4
        # X-Forwarded-For is nobody's word without a trusted proxy: the address stays the peer's.
        spoofed = await attacker.get(
            path, headers={**Stack.bearer(forged_token()), "X-Forwarded-For": "203.0.113.9"}
        )
        assert_problem(spoofed, 429)
        # A token already verified costs no signature check: it passes even from this address;
        # a good token never seen before would need one, and waits like the rest.
        assert (await attacker.get(path, headers=stack.registry.headers)).status_code == 200
        fresh = stack.token(ttl=600)
        assert_problem(await attacker.get(path, headers=Stack.bearer(fresh)), 429)
    # Another address is counted apart: its good token is verified and passes.
    before = await checks()
    async with client_from(stack, "127.0.0.2", stack.token(ttl=600)) as neighbour:
        assert (await neighbour.get(path)).status_code == 200
        assert_problem(await neighbour.get(path, headers=Stack.bearer(forged_token())), 401)
    after = await checks()
    assert after["accepted"] - before["accepted"] == 1 and after["refused"] - before["refused"] == 1
    # Nothing was written for any of them: the agreement is as signed.
    assert (
        await stack.pool.fetchval("SELECT count(*) FROM registry.events WHERE agreement_id = $1", agreement)
        == 1
    )


async def test_behind_a_trusted_proxy_the_forwarded_client_is_counted(
    database_url: str, kafka: Brokers, topic: str
) -> None:
    options = {
        "auth_failure_burst": 2,
        "auth_failure_rate_per_second": 0.001,
        "trusted_proxies": "127.0.0.1/32",
    }
    async with (
        running_stack(
            database_url, kafka, topic, relay=False, projections=False, registry_options=options
        ) as stack,
        client_from(stack, "127.0.0.1") as proxy,
    ):

        async def from_client(address: str) -> int:
            headers = {**Stack.bearer(forged_token()), "X-Forwarded-For": f"198.51.100.7, {address}"}
            return (await proxy.get("/v1/log/keys", headers=headers)).status_code

        assert [await from_client("192.0.2.1") for _ in range(3)] == [401, 401, 429]
        # Another client behind the same proxy has its own bucket; the left part, written by
        # the client itself, is never the key.
        assert [await from_client("192.0.2.2") for _ in range(3)] == [401, 401, 429]
        # IPv6 clients are counted by their /64.
        assert await from_client("2001:db8::1") == 401
        assert await from_client("2001:db8::2") == 401
        assert await from_client("2001:db8::3") == 429
        assert await from_client("2001:db8:0:1::1") == 401
