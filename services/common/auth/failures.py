"""Failed authentications, limited per source address before any signature is checked.

The client-id rate limit (`services.common.limits`) charges a client only once its token has
verified, so a stream of bad tokens was never limited, yet each one costs a signature check.
Here every failed authentication (no token, a token refused for any reason) takes one from a
token bucket of the address it came from, and an address whose bucket is empty is answered
`429` before its token is looked at: it can make the service check at most
`auth_failure_burst` signatures at once and `auth_failure_rate_per_second` a second after that
(docs/SECURITY.md, ADR 0005).

The address is the TCP peer's. `X-Forwarded-For` is believed only when the peer is one of
`trusted_proxies`: then the client is the rightmost address in it that is not a trusted proxy
(each proxy appends the peer it saw, so what is left of that is the client's to write). An IPv6
client is counted by its /64, the smallest block a single subscriber is usually given, so that
walking through one's own addresses does not refill the bucket. Buckets live in a bounded LRU:
an attacker with more addresses than it holds can push its own drained buckets out, but never
grows the process's memory.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Iterable

from starlette.requests import Request

from services.common.lru import Lru

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(text: str) -> tuple[Network, ...]:
    """`trusted_proxies`: addresses or CIDR blocks, separated by spaces or commas."""
    return tuple(ipaddress.ip_network(part, strict=False) for part in text.replace(",", " ").split())


class FailedAuthLimiter:
    """Token buckets of failed authentications by source address, in process."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_addresses: int = 100_000,
        trusted_proxies: Iterable[Network] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or burst < 1 or max_addresses < 1:
            raise ValueError(
                "a failed-authentication limit needs rate > 0, burst >= 1 and max_addresses >= 1"
            )
        self.rate = rate
        self.burst = float(burst)
        self.trusted_proxies = tuple(trusted_proxies)
        self.clock = clock
        self._buckets: Lru[str, tuple[float, float]] = Lru(max_addresses)  # key -> (tokens, at)

    def _tokens(self, key: str, now: float) -> float:
        tokens, at = self._buckets.get(key) or (self.burst, now)
        return min(self.burst, tokens + (now - at) * self.rate)

    def wait(self, key: str) -> float:
        """0 while the address may still fail; else the seconds until it may again."""
        tokens = self._tokens(key, self.clock())
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate

    def charge(self, key: str) -> None:
        """One failed authentication from the address."""
        now = self.clock()
        self._buckets.put(key, (max(0.0, self._tokens(key, now) - 1), now))

    def key_of(self, request: Request) -> str:
        """The bucket a request is counted in: its client's address (IPv6: its /64)."""
        peer = request.client.host if request.client is not None else ""
        address = _address(peer)
        if address is not None and self._trusted(address):
            address = self._forwarded_client(request, address)
        if address is None:
            return peer or "unknown"  # not an IP address (a test client, a Unix socket)
        if isinstance(address, ipaddress.IPv6Address):
            if address.ipv4_mapped is not None:
                return str(address.ipv4_mapped)
            return str(ipaddress.IPv6Network((address, 64), strict=False))
        return str(address)

    def _trusted(self, address: Address) -> bool:
        return any(address in network for network in self.trusted_proxies)

    def _forwarded_client(self, request: Request, proxy: Address) -> Address:
        hops = [
            hop.strip() for value in request.headers.getlist("x-forwarded-for") for hop in value.split(",")
        ]
        client = proxy
        for hop in reversed(hops):
            address = _address(hop)
            if address is None:
                break  # not written by a proxy we trust: the last hop we could read stands
            client = address
            if not self._trusted(address):
                break
        return client


def _address(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def failed_auth_limiter(
    rate: float, burst: int, max_addresses: int, trusted_proxies: str
) -> FailedAuthLimiter | None:
    """The configured limiter; `rate <= 0` turns it off."""
    if rate <= 0:
        return None
    return FailedAuthLimiter(
        rate, burst, max_addresses=max_addresses, trusted_proxies=parse_networks(trusted_proxies)
    )
