"""The network layer over Ethernet links, sans-IO: ARP, IPv4, ICMP, routing and forwarding.

``IpLayer`` is what sits between a stack's Ethernet ports and its transports, in
mirage-tcpip's place for ``Ipv4`` + ``Arp`` + ``Icmpv4``, and a router's forwarding plane:

- one :class:`Link` per interface (its MAC, MTU, offloads, ARP engine and address);
- a :class:`~fata.net.routing.RoutingTable` (longest-prefix match) filled with each link's
  connected subnet and default gateway, and open to static routes;
- local delivery to the transport handlers registered in ``handlers`` (by IP protocol),
  after reassembly; echo requests answered here; port-unreachable and friends on request;
- forwarding between links when ``forwarding`` is on: TTL decremented, ICMP time exceeded
  for TTL <= 1, fragmentation needed (with the next-hop MTU) for DF packets over the MTU,
  fragmentation otherwise, no forwarding of martians or broadcasts;
- hooks where a connection tracker and NAT sit (mirage-nat's place): every ``prerouting``
  hook sees each received IPv4 packet before the routing decision, every ``postrouting``
  hook each forwarded packet after it, with the links it came in and goes out by; a hook
  returns the packet to go on with (possibly rewritten, checksums its business) or None
  to drop it.  Locally generated packets do not pass the hooks.

No sockets, clock or event loop: frames come in with ``now``, frames leave through the
injected ``transmit(link_index, pieces, offload)``, and ``next_deadline``/``on_timer`` drive
the ARP retries and the reassembly timeouts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from fata.net import arp, checksum, ethernet, icmp, ipv4
from fata.net.errors import ParseError
from fata.net.ipv4 import Ipv4Config, Ipv4Header
from fata.net.routing import Route, RoutingTable

Transmit = Callable[[int, list[bytes], dict[str, int]], None]
"""``transmit(link_index, pieces, offload)``: one frame (Ethernet header first) to a link."""

Hook = Callable[[bytes, "int | None", "int | None"], "bytes | None"]
"""``hook(packet, in_link, out_link) -> packet | None``: the packet to go on with, or drop."""

Handler = Callable[[Ipv4Header, memoryview, bool, memoryview, "Link"], None]
"""A transport's input: (header, payload, checksum vouched for, whole packet, link)."""

_ANY = ipv4.ANY
_BROADCAST = ipv4.LIMITED_BROADCAST


def _martian(ip: bytes) -> bool:
    """Addresses never forwarded (RFC 1812 §5.3.7): this network, loopback, multicast and
    reserved (224/3), and the limited broadcast."""
    return ip[0] == 0 or ip[0] == 127 or ip[0] >= 224


@dataclass(eq=False)
class Link:
    """One Ethernet interface as the network layer sees it."""

    index: int
    name: str
    mac: bytes
    mtu: int
    csum_offload: bool = False
    tso: bool = False
    config: Ipv4Config | None = None
    arp: arp.Arp = field(init=False)
    headers: dict[bytes, bytes] = field(default_factory=dict)  # next-hop MAC -> Ethernet header
    routes: list[Route] = field(default_factory=list)  # the ones its address brought

    def __post_init__(self) -> None:
        self.arp = arp.Arp(self.mac)

    def eth_header(self, mac: bytes) -> bytes:
        """The IPv4 Ethernet header towards ``mac`` (cached)."""
        head = self.headers.get(mac)
        if head is None:
            head = self.headers[mac] = ethernet.header(mac, self.mac, ethernet.ETHERTYPE_IPV4)
        return head


class IpLayer:
    """Links, routes, local delivery and forwarding."""

    def __init__(self, transmit: Transmit, ident: int = 0) -> None:
        self.transmit = transmit
        self.links: list[Link] = []
        self.routes = RoutingTable()
        self.forwarding = False
        self.prerouting: list[Hook] = []
        self.postrouting: list[Hook] = []
        self.handlers: dict[int, Handler] = {}
        self.reassembler = ipv4.Reassembler()
        self.icmp_limiter = icmp.RateLimiter(100.0, 50)
        self.counters: dict[str, int] = {}
        self.local: set[bytes] = set()
        self.broadcast: set[bytes] = {_BROADCAST}
        self.accept_any_udp = False  # a DHCP client on an unconfigured link
        self._ident = ident & 0xFFFF
        self._now = 0.0  # the time of the last input, send or timer (the ICMP rate limit's)

    # ------------------------------------------------------------------ configuration

    def add_link(self, name: str, mac: bytes, mtu: int, *, csum_offload: bool = False,
                 tso: bool = False) -> Link:
        """A new interface; its index is its position."""
        link = Link(len(self.links), name, mac, mtu, csum_offload, tso)
        self.links.append(link)
        return link

    def configure(self, index: int, config: Ipv4Config | None) -> None:
        """Give link ``index`` its address (None: none), with its connected route and, when
        the config names one, a default route through its gateway."""
        link = self.links[index]
        for route in link.routes:  # static routes through the link stay (a DHCP renewal)
            self.routes.remove(route)
        link.routes = []
        link.config = config
        if config is not None:
            link.routes.append(self.routes.add((config.address, config.prefix_len), index))
            if config.gateway is not None:
                link.routes.append(self.routes.add((_ANY, 0), index, config.gateway))
        self.local = {lk.config.address for lk in self.links if lk.config is not None}
        self.broadcast = {_BROADCAST} | {lk.config.broadcast for lk in self.links
                                         if lk.config is not None}
        link.arp.addresses = {config.address} if config is not None else set()

    def egress(self, dst: bytes) -> Link | None:
        """The link a packet for ``dst`` leaves by (limited broadcast: the first link)."""
        if dst == _BROADCAST:
            return self.links[0] if self.links else None
        route = self.routes.lookup(dst)
        return None if route is None else self.links[route.iface]

    def source_for(self, dst: bytes) -> bytes:
        """Our address on the link towards ``dst`` (0.0.0.0 when there is none)."""
        link = self.egress(dst)
        if link is None or link.config is None:
            return _ANY
        return link.config.address

    def next_ident(self) -> int:
        """The next IP identification."""
        self._ident = (self._ident + 1) & 0xFFFF
        return self._ident

    def _count(self, name: str, n: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + n

    # ------------------------------------------------------------------ receive

    def frame_input(self, link: Link, frame: bytes, trusted: bool, now: float) -> None:
        """One received Ethernet frame; malformed ones are counted and dropped."""
        self._now = now
        try:
            _dst, _src, ethertype = ethernet.parse(frame)
            if ethertype == ethernet.ETHERTYPE_IPV4:
                self.ipv4_input(link, memoryview(frame)[14:], trusted, now)
            elif ethertype == ethernet.ETHERTYPE_ARP:
                out, released = link.arp.input(memoryview(frame)[14:], now)
                for f in out:
                    self.transmit(link.index, [f], {})
                for mac, (pieces, kw) in released:
                    self.transmit(link.index, [link.eth_header(mac), *pieces], kw)
            else:
                self._count("eth_unknown_type")
        except ParseError as exc:
            self._count(exc.counter)

    def ipv4_input(self, link: Link, packet: memoryview, trusted: bool, now: float) -> None:
        """One IPv4 packet from ``link``: hooks, then local delivery or forwarding."""
        self._now = now
        hdr, payload = ipv4.parse(packet)
        if self.prerouting:
            data = bytes(packet[:hdr.total_len])
            for hook in self.prerouting:
                result = hook(data, link.index, None)
                if result is None:
                    self._count("ipv4_hook_drops")
                    return
                data = result
            packet = memoryview(data)
            hdr, payload = ipv4.parse(packet)
            trusted = False  # a hook may have rewritten it: check again
        dst = hdr.dst
        if dst not in self.local:
            if dst in self.broadcast or (self.accept_any_udp and hdr.proto == ipv4.PROTO_UDP):
                if hdr.proto != ipv4.PROTO_UDP:
                    self._count("ipv4_broadcast_ignored")
                    return
            elif self.forwarding:
                self._forward(link, hdr, packet, now)
                return
            else:
                self._count("ipv4_not_for_us")
                return
        if hdr.mf or hdr.frag_offset:
            whole = self.reassembler.add(hdr, payload, now)
            if whole is None:
                return
            payload = memoryview(whole)
            trusted = False
        proto = hdr.proto
        handler = self.handlers.get(proto)
        if handler is not None:
            handler(hdr, payload, trusted, packet, link)
        elif proto == ipv4.PROTO_ICMP:
            self._icmp_input(hdr, payload)
        else:
            self._count("ipv4_unknown_protocol")

    def _icmp_input(self, hdr: Ipv4Header, payload: memoryview) -> None:
        icmp_type, _code = icmp.parse(payload)
        if icmp_type == icmp.TYPE_ECHO_REQUEST and hdr.dst in self.local:
            self._count("icmp_echo_replies")
            self.send(hdr.dst, hdr.src, ipv4.PROTO_ICMP, icmp.echo_reply(payload))
        else:
            self._count("icmp_ignored")

    # ------------------------------------------------------------------ forwarding

    def _forward(self, link: Link, hdr: Ipv4Header, packet: memoryview, now: float) -> None:
        """Route a packet that is not ours to the link it goes out by (RFC 1812 §5.2)."""
        if _martian(hdr.src) or _martian(hdr.dst) or hdr.src in self.broadcast:
            self._count("ipv4_martian_drops")
            return
        if hdr.ttl <= 1:
            self._count("ipv4_ttl_exceeded")
            self.icmp_error(hdr, packet, icmp.time_exceeded(packet))
            return
        route = self.routes.lookup(hdr.dst)
        if route is None:
            self._count("ipv4_no_route")
            self.icmp_error(hdr, packet, icmp.unreachable(icmp.CODE_NET_UNREACHABLE, packet))
            return
        out = self.links[route.iface]
        data = bytearray(packet[:hdr.total_len])
        data[8] -= 1  # TTL; the header checksum follows (RFC 1624 would patch it; 20 bytes)
        data[10:12] = b"\0\0"
        data[10:12] = checksum.checksum(data[:hdr.header_len]).to_bytes(2, "big")
        result: bytes | None = bytes(data)
        for hook in self.postrouting:
            result = hook(result, link.index, out.index)
            if result is None:
                self._count("ipv4_hook_drops")
                return
        if len(result) > out.mtu:
            if hdr.df:
                self._count("ipv4_frag_needed_sent")
                self.icmp_error(hdr, packet, icmp.unreachable(icmp.CODE_FRAG_NEEDED, packet,
                                                              out.mtu))
                return
            self._count("ipv4_fragmented")
            pieces = refragment(result, out.mtu)
        else:
            pieces = [result]
        self._count("ipv4_forwarded")
        hop = route.next_hop(hdr.dst)
        for piece in pieces:
            self._to_hop(out, hop, [piece], {}, now)

    def icmp_error(self, hdr: Ipv4Header, packet: memoryview, message: bytes) -> bool:
        """Send ``message`` back to the packet's source, unless RFC 1122 §3.2.2 forbids an
        error about it (an ICMP error, a fragment but the first, a broadcast or martian
        source) or the rate limit is reached; returns whether it was sent."""
        if hdr.frag_offset or _martian(hdr.src) or hdr.src in self.broadcast or \
                hdr.dst in self.broadcast:
            return False
        if hdr.proto == ipv4.PROTO_ICMP and len(packet) > hdr.header_len and \
                packet[hdr.header_len] in icmp.ERROR_TYPES:
            return False
        if not self.icmp_limiter.allow(self._now):
            self._count("icmp_rate_limited")
            return False
        src = hdr.dst if hdr.dst in self.local else self.source_for(hdr.src)
        if src == _ANY:
            return False
        self._count("icmp_errors_sent")
        self.send(src, hdr.src, ipv4.PROTO_ICMP, message)
        return True

    # ------------------------------------------------------------------ send

    def link_send(self, dst: bytes, pieces: list[bytes], now: float, **offload: int) -> None:
        """Send an IPv4 packet (given as pieces, header first) towards ``dst``."""
        if dst in self.broadcast:
            link = self.egress(dst) if dst == _BROADCAST else next(
                (lk for lk in self.links if lk.config and lk.config.broadcast == dst), None)
            if link is not None:
                self.transmit(link.index, [ethernet.header(ethernet.BROADCAST, link.mac,
                                                           ethernet.ETHERTYPE_IPV4), *pieces],
                              offload)
            return
        route = self.routes.lookup(dst)
        if route is None:
            self._count("ipv4_no_route")
            return
        self._to_hop(self.links[route.iface], route.next_hop(dst), pieces, offload, now)

    def _to_hop(self, link: Link, hop: bytes, pieces: list[bytes], offload: dict[str, int],
                now: float) -> None:
        mac = link.arp.lookup(hop, now)
        if mac is None:
            for frame in link.arp.resolve(hop, (pieces, offload), now):
                self.transmit(link.index, [frame], {})
            return
        self.transmit(link.index, [link.eth_header(mac), *pieces], offload)

    def send(self, src: bytes, dst: bytes, proto: int, payload: bytes, now: float | None = None,
             *, ttl: int = ipv4.DEFAULT_TTL) -> None:
        """Send one datagram, fragmenting it to the egress link's MTU if needed."""
        now = self._now if now is None else now
        link = self.egress(dst) if dst not in self.broadcast else (self.links[0] if self.links
                                                                   else None)
        mtu = link.mtu if link is not None else 1500
        ident = self.next_ident()
        if ipv4.HEADER_LEN + len(payload) <= mtu:
            self.link_send(dst, [ipv4.header(src, dst, proto, len(payload), ident, ttl=ttl),
                                 payload], now)
            return
        self._count("ipv4_fragmented")
        for frag in ipv4.fragment(src, dst, proto, payload, ident, mtu, ttl=ttl):
            self.link_send(dst, [frag], now)

    # ------------------------------------------------------------------ time

    def next_deadline(self) -> float | None:
        """When ``on_timer`` next has work: an ARP retry or a reassembly timeout."""
        deadlines = [d for d in (*(lk.arp.next_deadline() for lk in self.links),
                                 self.reassembler.next_deadline()) if d is not None]
        return min(deadlines) if deadlines else None

    def on_timer(self, now: float) -> None:
        """ARP retries (and the drops after the last one), reassembly timeouts."""
        self._now = now
        for link in self.links:
            frames, dropped = link.arp.on_timer(now)
            for frame in frames:
                self.transmit(link.index, [frame], {})
            if dropped:
                self._count("arp_unresolved_drops", len(dropped))
        self.reassembler.on_timer(now)



def refragment(packet: bytes, mtu: int) -> list[bytes]:
    """Cut a whole IPv4 packet (a fragment itself, maybe) into fragments that fit ``mtu``;
    options are kept in the first fragment only (RFC 791 lets a router do that)."""
    hdr, payload = ipv4.parse(packet, verify=False)
    step = ((mtu - ipv4.HEADER_LEN) // 8) * 8
    if step <= 0:
        raise ValueError(f"MTU {mtu} too small to fragment")
    out = []
    for offset in range(0, len(payload), step):
        chunk = payload[offset:offset + step]
        more = hdr.mf or offset + step < len(payload)
        out.append(ipv4.header(hdr.src, hdr.dst, hdr.proto, len(chunk), hdr.ident, ttl=hdr.ttl,
                               df=False, mf=more, frag_offset=hdr.frag_offset + offset,
                               tos=hdr.tos) + bytes(chunk))
    return out
