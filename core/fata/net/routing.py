"""An IPv4 routing table with longest-prefix match, sans-IO.

Routes name an interface by index and optionally a gateway; the most specific prefix wins,
then the lowest metric.  Connected routes (an interface's own subnet) are added by the IP
layer when an address is configured; default and static routes by the user.  Lookups are
memoised per destination (bounded), since a host talks to few destinations again and again.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

MAX_CACHED = 4096


@dataclass(frozen=True, slots=True)
class Route:
    """``network/prefix_len`` is reached through interface ``iface``, via ``gateway`` if set."""

    network: int
    prefix_len: int
    iface: int
    gateway: bytes | None = None
    metric: int = 0

    @property
    def mask(self) -> int:
        """The prefix as a 32-bit mask."""
        return (0xFFFFFFFF << (32 - self.prefix_len)) & 0xFFFFFFFF

    def matches(self, dst: int) -> bool:
        """Whether destination ``dst`` (as an integer) is in this route's prefix."""
        return dst & self.mask == self.network

    def next_hop(self, dst: bytes) -> bytes:
        """Where a packet for ``dst`` goes on the link: the gateway, or ``dst`` itself."""
        return self.gateway or dst

    def __str__(self) -> str:
        net = ipaddress.IPv4Network((self.network, self.prefix_len))
        via = f" via {ipaddress.IPv4Address(self.gateway)}" if self.gateway else ""
        return f"{net}{via} dev {self.iface}" + (f" metric {self.metric}" if self.metric else "")


class RoutingTable:
    """Routes, most specific first."""

    def __init__(self) -> None:
        self._routes: list[Route] = []
        self._cache: dict[bytes, Route | None] = {}

    def add(self, cidr: str | tuple[bytes, int], iface: int, gateway: bytes | None = None,
            metric: int = 0) -> Route:
        """Add a route for ``cidr`` (``"10.0.0.0/8"`` or ``(address, prefix_len)``)."""
        if isinstance(cidr, str):
            net = ipaddress.IPv4Network(cidr, strict=False)
        else:
            net = ipaddress.IPv4Network((int.from_bytes(cidr[0], "big"), cidr[1]), strict=False)
        route = Route(int(net.network_address), net.prefixlen, iface, gateway, metric)
        self._routes.append(route)
        self._routes.sort(key=lambda r: (-r.prefix_len, r.metric))
        self._cache.clear()
        return route

    def remove(self, route: Route) -> None:
        """Remove ``route`` (absent: nothing happens)."""
        if route in self._routes:
            self._routes.remove(route)
            self._cache.clear()

    def remove_interface(self, iface: int) -> None:
        """Remove every route through interface ``iface`` (its address went away)."""
        self._routes = [r for r in self._routes if r.iface != iface]
        self._cache.clear()

    def lookup(self, dst: bytes) -> Route | None:
        """The best route to ``dst``, or None (unreachable)."""
        cache = self._cache
        if dst in cache:
            return cache[dst]
        value = int.from_bytes(dst, "big")
        found = next((r for r in self._routes if r.matches(value)), None)
        if len(cache) >= MAX_CACHED:
            cache.clear()
        cache[dst] = found
        return found

    def __iter__(self):  # -> Iterator[Route]
        return iter(list(self._routes))

    def __len__(self) -> int:
        return len(self._routes)
