"""The pure parts of bounded work (ADR 0005): the failed-authentication buckets and how a
request's address is found, and the byte budget of a page."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from services.common.auth.failures import FailedAuthLimiter, failed_auth_limiter, parse_networks
from services.common.paging import json_with_list, render, within_bytes


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def request_from(peer: str, forwarded: str | None = None) -> Request:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded is not None else []
    return Request({"type": "http", "client": (peer, 40000), "headers": headers})


def test_an_address_may_fail_its_burst_then_waits_for_the_refill() -> None:
    clock = Clock()
    limiter = FailedAuthLimiter(0.5, 3, clock=clock)
    for _ in range(3):
        assert limiter.wait("192.0.2.1") == 0
        limiter.charge("192.0.2.1")
    assert limiter.wait("192.0.2.1") == pytest.approx(2.0)  # one failure back every 2 s
    assert limiter.wait("192.0.2.2") == 0  # another address is counted apart
    clock.now += 2
    assert limiter.wait("192.0.2.1") == 0
    limiter.charge("192.0.2.1")
    assert limiter.wait("192.0.2.1") > 0
    clock.now += 3600  # a bucket never holds more than its burst
    for _ in range(3):
        limiter.charge("192.0.2.1")
    assert limiter.wait("192.0.2.1") > 0


def test_memory_is_bounded_by_the_addresses_it_keeps() -> None:
    limiter = FailedAuthLimiter(0.001, 1, max_addresses=100, clock=Clock())
    for n in range(10_000):
        limiter.charge(f"10.0.{n // 256}.{n % 256}")
    assert len(limiter._buckets._items) == 100
    assert limiter.wait("10.0.39.15") > 0  # the most recent stay


def test_the_address_is_the_peers_unless_a_trusted_proxy_forwards() -> None:
    plain = FailedAuthLimiter(1, 1)
    assert plain.key_of(request_from("192.0.2.7", "203.0.113.1")) == "192.0.2.7"
    proxied = FailedAuthLimiter(1, 1, trusted_proxies=parse_networks("10.0.0.0/8, 192.0.2.1"))
    # The rightmost address that is not a trusted proxy; what the client wrote left of it is not.
    assert proxied.key_of(request_from("10.1.2.3", "198.51.100.1, 203.0.113.9, 192.0.2.1")) == "203.0.113.9"
    assert proxied.key_of(request_from("10.1.2.3", "garbage, 203.0.113.9")) == "203.0.113.9"
    assert proxied.key_of(request_from("10.1.2.3", "203.0.113.9, not-an-address")) == "10.1.2.3"
    assert proxied.key_of(request_from("10.1.2.3")) == "10.1.2.3"
    assert proxied.key_of(request_from("192.0.2.8", "203.0.113.9")) == "192.0.2.8"  # not a proxy of ours


def test_ipv6_counts_by_its_64_and_a_mapped_ipv4_as_itself() -> None:
    limiter = FailedAuthLimiter(1, 1)
    assert limiter.key_of(request_from("2001:db8:1:2:aaaa::1")) == "2001:db8:1:2::/64"
    assert limiter.key_of(request_from("2001:db8:1:2:ffff::9")) == "2001:db8:1:2::/64"
    assert limiter.key_of(request_from("::ffff:192.0.2.5")) == "192.0.2.5"
    assert limiter.key_of(request_from("testclient")) == "testclient"


def test_the_settings_turn_it_off_or_refuse_bad_networks() -> None:
    assert failed_auth_limiter(0, 10, 100, "") is None
    assert failed_auth_limiter(1, 10, 100, "10.0.0.0/8") is not None
    with pytest.raises(ValueError):
        parse_networks("10.0.0.0/33")
    with pytest.raises(ValueError):
        FailedAuthLimiter(1, 0)


def test_a_page_stops_before_the_item_that_would_pass_the_budget_and_holds_one() -> None:
    items = [render({"n": n, "text": "x" * 90}) for n in range(10)]
    size = len(items[0]) + 1
    taken, cut = within_bytes(items, 3 * size)
    assert taken == items[:3] and cut
    assert within_bytes(items, 3 * size - 1) == (items[:2], True)
    assert within_bytes(items, 100 * size) == (items, False)
    assert within_bytes(items, 1) == (items[:1], True)  # always one
    assert within_bytes([], 1) == ([], False)
    body = json_with_list({"next_cursor": None}, "events", items[:2]).body
    assert body == render(
        {"events": [{"n": 0, "text": "x" * 90}, {"n": 1, "text": "x" * 90}], "next_cursor": None}
    )
