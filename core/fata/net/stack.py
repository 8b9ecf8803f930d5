"""``DirectStack``: Fata's own TCP/IP behind the ``fata.devices.Stack`` interface.

This is the thin asyncio layer around the sans-IO engines: it takes frames from a
``Netif``, runs them through Ethernet → ARP/IPv4 → ICMP/UDP/TCP, sends what the engines
produce, schedules one event-loop timer for the earliest engine deadline, and turns TCP
connections into ``Flow`` objects with awaitable reads and backpressured writes.

Work caused by a burst of received frames is flushed once per event-loop turn
(``call_soon``), so a batch of segments costs one pass over the TCP output queue and
one wake-up per affected flow, not one per frame.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import struct
import weakref
from collections.abc import Callable, Sequence

from fata.devices import (
    Address,
    AddressInUse,
    AddressLike,
    AddressNotAvailable,
    Console,
    DatagramHandler,
    Flow,
    FlowHandler,
    Interface,
    NetworkUnreachable,
    ReplyCache,
    Stack,
    TcpListener,
    UdpEndpoint,
    bind_address,
    ip_address,
    reply_bytes,
)
from fata.devices.netif import Netif
from fata.net import arp, checksum, dhcp, ethernet, icmp, ipv4, tcp_wire, udp
from fata.net.errors import ParseError
from fata.net.ipv4 import Ipv4Config
from fata.net.tcp import Connection, Listener, State, TcpConfig, TcpEngine

EPHEMERAL = (49152, 65535)
_ANY = ipv4.ANY
# Ethernet (addresses skipped) + option-less IPv4 + UDP headers, for the datagram fast path
# (ethertype, version/IHL/TOS) (total length) (ident) (fragment, TTL/protocol) (checksum)
# (src) (dst) (sport) (dport) (UDP length) (UDP checksum); 32-bit fields are summed whole,
# as 2**16 == 1 (mod 0xFFFF) makes that the sum of their two 16-bit words
_UDP_IN = struct.Struct("!12xIHHIHIIHHHH")
# 0x4500, total length, ident, 0x4011 (no fragment, TTL 64, UDP), checksum, addresses,
# ports, UDP length, UDP checksum
_UDP_OUT = struct.Struct("!HHHIH8sHHHH")
_M = 0xFFFF
_Route = tuple[bytes, float, int, bytes, int]
_IP = ipaddress.IPv4Address


def _address(ip: bytes, port: int) -> Address:
    return _IP(ip), port


class DirectUdpEndpoint(UdpEndpoint):
    """A bound UDP port of a ``DirectStack``."""

    def __init__(self, stack: DirectStack, ip: bytes, port: int,
                 handler: DatagramHandler, reply_cache: ReplyCache | None = None) -> None:
        self._stack = stack
        self.ip = ip
        self.port = port
        self.handler = handler
        # the fast path's view of the reply cache: (entries, prefix, payload offset)
        self.memo = None if reply_cache is None else (
            reply_cache.entries, reply_cache.prefix, 42 + reply_cache.prefix)
        self.local = _address(ip, port)
        self.closed = False

    def sendto(self, data: bytes, peer: tuple[AddressLike, int]) -> None:
        """Send one datagram from this port (an IPv6 peer is unreachable: dropped)."""
        if self.closed:
            return
        stack = self._stack
        ip = ip_address(peer[0])
        if ip.version != 4:
            stack._count("udp_unreachable_drops")
            return
        dst = ip.packed
        src = self.ip if self.ip != _ANY else stack.source_for(dst)
        stack.udp_send(src, self.port, dst, peer[1], data)

    def close(self) -> None:
        """Unbind."""
        if not self.closed:
            self.closed = True
            self._stack._udp.pop((self.ip, self.port), None)
            self._stack._udp_keys.pop((int.from_bytes(self.ip, "big") << 16) | self.port, None)


class DirectFlow(Flow):
    """A TCP connection of a ``DirectStack``."""

    def __init__(self, stack: DirectStack, conn: Connection) -> None:
        self._stack = stack
        self._conn = conn
        self._waiter: asyncio.Future[None] | None = None
        self._shut = False  # our side is done sending (shutdown or close)
        self._closed = False  # close(): nothing more is read
        conn.user = self
        self.local = _address(conn.local_ip, conn.local_port)
        self.peer = _address(conn.remote_ip, conn.remote_port)

    @property
    def connection(self) -> Connection:
        """The engine's control block (for tests and diagnostics)."""
        return self._conn

    @property
    def nodelay(self) -> bool:
        """Whether Nagle's algorithm is off for this flow (``TCP_NODELAY``)."""
        return not self._conn.nagle

    @nodelay.setter
    def nodelay(self, value: bool) -> None:
        self._conn.nagle = not value

    def _wake(self) -> None:
        if self._closed and self._conn.rcvbuf:  # data after close: reset, as a socket does
            self.abort()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self) -> None:
        self._waiter = self._stack.loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    async def read(self, max_bytes: int = 65536) -> bytes:
        """The next received bytes; ``b""`` at end of stream, after a reset or our close."""
        conn = self._conn
        if self._closed:
            return b""
        while not conn.rcvbuf:
            if conn.peer_fin or conn.state == State.CLOSED:
                return b""
            await self._wait()
        data = conn.app_read(max_bytes, self._stack.loop.time())
        self._stack.flush()
        return data

    async def write(self, data: bytes) -> None:
        """Queue ``data``, waiting while the send buffer is full."""
        conn = self._conn
        view = memoryview(data)
        loop = self._stack.loop
        if self._shut:
            raise BrokenPipeError("write after shutdown or close")
        while view:
            if conn.error is not None or conn.state == State.CLOSED:
                raise ConnectionResetError(str(conn.error or "connection reset"))
            n = conn.app_send(view, loop.time())
            self._stack.flush()
            view = view[n:]
            if view:
                await self._wait()

    async def shutdown(self) -> None:
        """Half-close: FIN after the queued data; the peer's data can still be read."""
        if self._shut:
            return
        self._shut = True
        self._conn.app_close(self._stack.loop.time())
        self._stack.flush()

    async def close(self) -> None:
        """FIN after the queued data and stop reading; unread data means RST instead."""
        if self._closed:
            return
        self._closed = True
        if self._conn.rcvbuf:
            self.abort()
            return
        await self.shutdown()

    def abort(self) -> None:
        """Send RST and forget the connection."""
        self._shut = self._closed = True
        if self._conn.state != State.CLOSED:
            self._conn.app_abort(self._stack.loop.time())
            self._stack.flush()


class DirectTcpListener(TcpListener):
    """A listening port of a ``DirectStack``."""

    def __init__(self, stack: DirectStack, listener: Listener, handler: FlowHandler) -> None:
        self._stack = stack
        self.listener = listener
        self.handler = handler
        self.local = _address(listener.ip, listener.port)

    def close(self) -> None:
        """Stop accepting; connections whose handshake already completed are still served
        (the handler stays reachable from them, ``DirectStack._handlers``)."""
        self._stack.tcp.unlisten(self.listener)
        self._stack._listeners.pop(self.listener, None)


class DirectStack(Stack):
    """Ethernet/ARP/IPv4/ICMP/UDP/TCP over a ``Netif``."""

    def __init__(self, netif: Netif, config: Ipv4Config | None, *,
                 tcp_config: TcpConfig | None = None, console: Console | None = None,
                 rand: Callable[[int], bytes] = os.urandom) -> None:
        self.netif = netif
        self.config = config
        self.console = console
        self.rand = rand
        self.loop = asyncio.get_running_loop()
        if tcp_config is None:
            tcp_config = TcpConfig(mss=netif.mtu - 40)
            if netif.tso and netif.csum_offload:
                tcp_config.tso_max = 65000
        self.tcp = TcpEngine(tcp_config, rand)
        self.arp = arp.Arp(netif.mac)
        self.reassembler = ipv4.Reassembler()
        self.icmp_limiter = icmp.RateLimiter(100.0, 50)
        self.counters: dict[str, int] = {}
        self._udp: dict[tuple[bytes, int], DirectUdpEndpoint] = {}
        self._listeners: dict[Listener, DirectTcpListener] = {}
        # every listener's handler, open or closed, for as long as a connection refers to it
        self._handlers: weakref.WeakKeyDictionary[Listener, FlowHandler] = \
            weakref.WeakKeyDictionary()
        self._tasks: set[asyncio.Task[None]] = set()
        self._eth_headers: dict[bytes, bytes] = {}
        # datagram fast path state, keyed by integers (no tuple or bytes objects per packet)
        self._names: dict[int, ipaddress.IPv4Address] = {}
        self._routes: dict[int, _Route] = {}  # on-link peer -> what its replies reuse
        self._udp_keys: dict[int, DirectUdpEndpoint] = {}  # (ip << 16) | port -> endpoint
        self._local_ints: set[int] = set()
        self._ident = int.from_bytes(rand(2), "big")
        self._flush_scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._closed = False
        self._local: set[bytes] = set()
        self._broadcast: set[bytes] = {ipv4.LIMITED_BROADCAST}
        self.dhcp_port_open = False  # set while a DHCP client needs unconfigured receive
        self.udp_promiscuous: DirectUdpEndpoint | None = None
        self.dhcp: dhcp.DhcpClient | None = None
        self._dhcp_bound: asyncio.Future[None] | None = None
        if config is not None:
            self.set_config(config)

    # ------------------------------------------------------------------ configuration

    def set_config(self, config: Ipv4Config | None) -> None:
        """(Re)configure the interface address (used at start and by DHCP)."""
        self.config = config
        self._routes = {}
        self._local = {config.address} if config else set()
        self._local_ints = {int.from_bytes(ip, "big") for ip in self._local}
        self._broadcast = {ipv4.LIMITED_BROADCAST}
        if config is not None:
            self._broadcast.add(config.broadcast)
        self.arp.addresses = set(self._local)

    def start(self) -> None:
        """Attach to the netif and announce our address (gratuitous ARP)."""
        self.netif.start(self._on_frame, self._on_frames)
        if self.config is not None:
            self.announce()

    def announce(self) -> None:
        """Send a gratuitous ARP for each address."""
        for ip in self._local:
            self.netif.send(self.arp.gratuitous(ip))

    @property
    def interfaces(self) -> list[Interface]:
        """The one interface: the netif, with the configured address (none before DHCP)."""
        config = self.config
        addresses = () if config is None else (ipaddress.IPv4Interface(
            (_IP(config.address), config.prefix_len)),)
        return [Interface(getattr(self.netif, "name", "net0"), self.netif.mac, self.netif.mtu,
                          addresses)]

    def source_for(self, dst: bytes) -> bytes:
        """The source address to use towards ``dst``."""
        if self.config is None:
            return _ANY
        return self.config.address

    def stats(self) -> dict[str, int]:
        """Every drop and event counter of every layer, prefixed by layer."""
        out = dict(self.counters)
        for prefix, counters in (("arp", self.arp.counters),
                                 ("dhcp", self.dhcp.counters if self.dhcp else {}),
                                 ("reasm", self.reassembler.counters),
                                 ("tcp", self.tcp.counters)):
            for name, value in counters.items():
                out[f"{prefix}_{name}"] = value
        return out

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    # ------------------------------------------------------------------ receive

    def _on_frame(self, frame: bytes, trusted: bool) -> None:
        """One received frame (devices that deliver frames one at a time)."""
        self._on_frames((frame,), b"\x01" if trusted else b"\x00")

    def _on_frames(self, frames: Sequence[bytes], trusted: bytes) -> None:
        """A batch of received frames; ``trusted[i]``: the device vouched for frame i.

        Plain unicast UDP datagrams for a bound port are served right here, in one pass
        each: request/response appliances (DNS) live on this path, so it avoids the general
        path's per-layer objects (one ``struct`` unpack for all three headers, the reply's
        IP and UDP headers in one pack, the UDP checksum left to the device when it can, the
        peer's Ethernet header from a per-peer cache), and the replies to the whole batch go
        to the device in one ``send_many``.  Anything unusual (IP options, fragments, not
        ours, no cached next hop, a bad checksum) takes the general path, which also does
        the counting; replies gathered so far are sent first, so the order is kept.
        """
        out: list[tuple[bytes, ...]] = []
        unpack = _UDP_IN.unpack_from
        pack = _UDP_OUT.pack
        local = self._local_ints
        keys = self._udp_keys
        names = self._names
        routes = self._routes
        room = self.netif.mtu - 28
        offload = self.netif.csum_offload
        now = self.loop.time()
        for frame, vouched in zip(frames, trusted, strict=True):
            try:
                if len(frame) >= 42 and frame[23] == 17:
                    (ew, total, ident, frag_proto, csum, src, dst, sport, dport, ulen,
                     ucsum) = unpack(frame)
                    ep = keys.get((dst << 16) | dport) or keys.get(dport)
                    if ep is not None and ew >> 8 == 0x080045 and frag_proto & 0x3FFF00FF == 17 and \
                            dst in local and 8 <= ulen <= total - 20 and total + 14 <= len(frame) and \
                            not (ew + total + ident + frag_proto + csum + src + dst - 0x0800) % _M and \
                            not (ucsum and not vouched and (src + dst + 17 + ulen + int.from_bytes(
                                frame[34:34 + ulen], "big") * (256 if ulen & 1 else 1)) % _M):
                        memo = ep.memo
                        tail = None if memo is None else memo[0].get(frame[memo[2]:34 + ulen])
                        if tail is not None:
                            reply = frame[42:memo[2]] + tail
                        else:
                            peer_ip = names.get(src)
                            if peer_ip is None:
                                if len(names) > 4096:
                                    names.clear()
                                peer_ip = names[src] = _IP(src)
                            try:
                                reply = ep.handler(frame[42:34 + ulen], (peer_ip, sport))
                                if reply is None:
                                    continue
                                if reply.__class__ is not bytes:
                                    reply = reply_bytes(reply)
                            except Exception as exc:  # one bad datagram must not stop the port
                                self._handler_failed(ep, exc)
                                continue
                        route = routes.get(src)
                        rlen = len(reply)
                        if route is None or rlen > room or route[1] < now:
                            self._udp_reply_slow(dst, dport, src, sport, reply, out)
                            continue
                        head, _until, ip_sum, addresses, udp_sum = route
                        ulen = 8 + rlen
                        ident = self._ident = (self._ident + 1) & 0xFFFF
                        out.append((head, pack(
                            0x4500, 20 + ulen, ident, 0x4011, _M - (ip_sum + ulen + ident) % _M,
                            addresses, dport, sport, ulen, (udp_sum + ulen) % _M if offload else
                            checksum.finish(udp_sum + ulen + dport + sport + ulen +
                                            checksum.partial(reply))), reply))
                        continue
            except Exception as exc:  # never lose the rest of the batch
                self._internal_error("datagram fast path", exc)
                continue
            if out:
                self._send_replies(out)
                out = []
            self._frame_general(frame, bool(vouched), now)
        if out:
            self._send_replies(out)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self.flush)

    def _send_replies(self, out: list[tuple[bytes, ...]]) -> None:
        if self.netif.csum_offload:
            self.netif.send_many(out, csum_start=34, csum_offset=6)  # UDP checksum at 14+20+6
        else:
            self.netif.send_many(out)

    def _udp_reply_slow(self, src: int, sport: int, dst: int, dport: int, reply: bytes,
                        out: list[tuple[bytes, ...]]) -> None:
        """A fast-path reply with no cached next hop, or too big for one frame.

        The hop is learnt for the datagrams after this one (when ARP knows it); this one
        goes the general way, after the replies gathered so far to keep their order.
        """
        self._route_for(dst)
        if out:
            self._send_replies(out)
            out.clear()
        self.udp_send(src.to_bytes(4, "big"), sport, dst.to_bytes(4, "big"), dport, reply)

    def _handler_failed(self, ep: DirectUdpEndpoint, exc: Exception) -> None:
        self._count("udp_handler_errors")
        if self.console is not None:
            self.console.error(f"udp {ep.local[0]}:{ep.local[1]} handler failed: {exc!r}")

    def _internal_error(self, what: str, exc: Exception) -> None:
        self._count("internal_errors")
        if self.console is not None:
            self.console.error(f"net: {what} failed: {exc!r}")

    def _frame_general(self, frame: bytes, trusted: bool, now: float) -> None:
        try:
            _dst, _src, ethertype = ethernet.parse(frame)
            if ethertype == ethernet.ETHERTYPE_IPV4:
                self._ipv4_input(memoryview(frame)[14:], trusted, now)
            elif ethertype == ethernet.ETHERTYPE_ARP:
                out, released = self.arp.input(memoryview(frame)[14:], now)
                for f in out:
                    self.netif.send(f)
                for mac, (pieces, kw) in released:
                    self.netif.send([self._eth_header(mac), *pieces], **kw)
            else:
                self._count("eth_unknown_type")
        except ParseError as exc:
            self._count(exc.counter)
        except Exception as exc:
            self._internal_error("frame handling", exc)

    def _route_for(self, peer: int) -> _Route | None:
        """What replies to an on-link peer whose MAC is cached reuse, valid until its ARP
        entry expires: the Ethernet header, the partial sums of the reply's IP header and
        UDP pseudo-header without their per-datagram fields, and the address pair.

        Keyed by the peer alone: the fast path only serves datagrams addressed to our one
        configured address, which is therefore the reply's source.
        """
        raw = peer.to_bytes(4, "big")
        entry = self.arp.cache.get(raw)
        config = self.config
        if entry is None or config is None or not config.on_link(raw) or \
                entry[1] < self.loop.time():
            return None
        if len(self._routes) > 4096:
            self._routes.clear()
        ours = int.from_bytes(config.address, "big")
        route = self._routes[peer] = (
            self._eth_header(entry[0]), entry[1],
            (0x4500 + 0x4011 + 20 + ours + peer) % _M,  # + total length + ident per datagram
            config.address + raw,
            (ours + peer + 17) % _M)  # + UDP length per datagram
        return route

    def _ipv4_input(self, packet: memoryview, trusted: bool, now: float) -> None:
        hdr, payload = ipv4.parse(packet)
        dst = hdr.dst
        if dst not in self._local:
            if dst in self._broadcast or (self.dhcp_port_open and hdr.proto == ipv4.PROTO_UDP):
                if hdr.proto != ipv4.PROTO_UDP:
                    self._count("ipv4_broadcast_ignored")
                    return
            else:
                self._count("ipv4_not_for_us")
                return
        if hdr.mf or hdr.frag_offset:
            whole = self.reassembler.add(hdr, payload, now)
            self._arm_timer()
            if whole is None:
                return
            payload = memoryview(whole)
            trusted = False
        proto = hdr.proto
        if proto == ipv4.PROTO_TCP:
            pseudo = None if trusted else checksum.pseudo_header_ipv4(hdr.src, dst, 6,
                                                                       len(payload))
            seg = tcp_wire.parse(payload, pseudo)
            if dst not in self._local:
                return
            self.tcp.input(hdr.src, dst, seg, now)
        elif proto == ipv4.PROTO_UDP:
            self._udp_input(hdr, payload, trusted, packet)
        elif proto == ipv4.PROTO_ICMP:
            self._icmp_input(hdr, payload)
        else:
            self._count("ipv4_unknown_protocol")

    def _udp_input(self, hdr: ipv4.Ipv4Header, payload: memoryview, trusted: bool,
                   packet: memoryview) -> None:
        sport, dport, data = udp.parse(payload, hdr.src, hdr.dst, not trusted)
        ep = self._udp.get((hdr.dst, dport)) or self._udp.get((_ANY, dport))
        if ep is None and self.dhcp_port_open and dport == 68:
            ep = self.udp_promiscuous
        if ep is None:
            self._count("udp_closed_port")
            if hdr.dst in self._local:
                self._icmp_error(hdr, packet, icmp.CODE_PORT_UNREACHABLE)
            return
        try:
            reply = ep.handler(bytes(data), _address(hdr.src, sport))
            if reply is not None and reply.__class__ is not bytes:
                reply = reply_bytes(reply)
        except Exception as exc:
            self._handler_failed(ep, exc)
            return
        if reply is not None:
            src = hdr.dst if hdr.dst in self._local else self.source_for(hdr.src)
            self.udp_send(src, dport, hdr.src, sport, reply)

    def _icmp_input(self, hdr: ipv4.Ipv4Header, payload: memoryview) -> None:
        icmp_type, _code = icmp.parse(payload)
        if icmp_type == icmp.TYPE_ECHO_REQUEST and hdr.dst in self._local:
            self._count("icmp_echo_replies")
            self.ip_send(hdr.dst, hdr.src, ipv4.PROTO_ICMP, icmp.echo_reply(payload))
        else:
            self._count("icmp_ignored")

    def _icmp_error(self, hdr: ipv4.Ipv4Header, packet: memoryview, code: int) -> None:
        if not self.icmp_limiter.allow(self.loop.time()):
            self._count("icmp_rate_limited")
            return
        self._count("icmp_unreachable_sent")
        self.ip_send(hdr.dst, hdr.src, ipv4.PROTO_ICMP, icmp.unreachable(code, packet))

    # ------------------------------------------------------------------ send

    def _eth_header(self, mac: bytes) -> bytes:
        head = self._eth_headers.get(mac)
        if head is None:
            head = ethernet.header(mac, self.netif.mac, ethernet.ETHERTYPE_IPV4)
            self._eth_headers[mac] = head
        return head

    def _next_ident(self) -> int:
        self._ident = (self._ident + 1) & 0xFFFF
        return self._ident

    def _link_send(self, dst: bytes, pieces: list[bytes], **kw: int) -> None:
        config = self.config
        if dst in self._broadcast:
            mac = ethernet.BROADCAST
        else:
            hop = config.next_hop(dst) if config is not None else None
            if hop is None:
                self._count("ipv4_no_route")
                return
            now = self.loop.time()
            mac = self.arp.lookup(hop, now)
            if mac is None:
                for frame in self.arp.resolve(hop, (pieces, kw), now):
                    self.netif.send(frame)
                self._arm_timer()
                return
        self.netif.send([self._eth_header(mac), *pieces], **kw)

    def ip_send(self, src: bytes, dst: bytes, proto: int, payload: bytes) -> None:
        """Send one datagram, fragmenting it to the MTU if needed."""
        mtu = self.netif.mtu
        ident = self._next_ident()
        if ipv4.HEADER_LEN + len(payload) <= mtu:
            self._link_send(dst, [ipv4.header(src, dst, proto, len(payload), ident), payload])
            return
        self._count("ipv4_fragmented")
        for frag in ipv4.fragment(src, dst, proto, payload, ident, mtu):
            self._link_send(dst, [frag])

    def udp_send(self, src: bytes, sport: int, dst: bytes, dport: int, data: bytes) -> None:
        """Send one UDP datagram."""
        pseudo = checksum.pseudo_header_ipv4(src, dst, udp.PROTO, udp.HEADER_LEN + len(data))
        self.ip_send(src, dst, ipv4.PROTO_UDP, udp.build(sport, dport, data, pseudo))

    def _tcp_send(self, src: bytes, dst: bytes, seg: tcp_wire.Segment, mss: int) -> None:
        payload = seg.payload
        plen = len(payload)
        netif = self.netif
        if netif.csum_offload:
            head = tcp_wire.header(seg, None)
            tcp_len = len(head) + plen
            psum = checksum.pseudo_header_ipv4(src, dst, 6, tcp_len)
            head = head[:16] + psum.to_bytes(2, "big") + head[18:]
            gso = mss if plen > mss and netif.tso else 0
            iph = ipv4.header(src, dst, 6, tcp_len, self._next_ident(), df=True)
            self._link_send(dst, [iph + head, payload], csum_start=34, csum_offset=16,
                            gso_size=gso)
            return
        tcp_len = tcp_wire.HEADER_LEN + plen
        head = tcp_wire.header(seg, 0)  # sized first: options decide the length
        tcp_len = len(head) + plen
        head = tcp_wire.header(seg, checksum.pseudo_header_ipv4(src, dst, 6, tcp_len))
        segment = head + bytes(payload) if plen else head
        if ipv4.HEADER_LEN + tcp_len <= netif.mtu:
            iph = ipv4.header(src, dst, 6, tcp_len, self._next_ident(), df=True)
            self._link_send(dst, [iph, segment])
        else:
            self.ip_send(src, dst, 6, segment)

    # ------------------------------------------------------------------ engine plumbing

    def flush(self) -> None:
        """Send what the TCP engine queued, wake flows, start handlers, re-arm the timer."""
        self._flush_scheduled = False
        tcp = self.tcp
        while tcp.outbox:
            out = tcp.outbox
            tcp.outbox = []
            for src, dst, seg, mss in out:
                self._tcp_send(src, dst, seg, mss)
        if tcp.accepted:
            accepted = tcp.accepted
            tcp.accepted = []
            for conn in accepted:
                self._accept(conn)
        for conn in tcp.take_touched():
            flow = conn.user
            if flow is not None:
                flow._wake()  # type: ignore[attr-defined]
        self._arm_timer()

    def _accept(self, conn: Connection) -> None:
        self.tcp.accepted_by_app(conn)
        handler = self._handlers.get(conn.listener)  # type: ignore[arg-type]
        if handler is None or self._closed:
            conn.app_abort(self.loop.time())
            return
        flow = DirectFlow(self, conn)
        task = self.loop.create_task(self._run_handler(handler, flow))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_handler(self, handler: FlowHandler, flow: DirectFlow) -> None:
        try:
            await handler(flow)
        except Exception as exc:
            self._count("tcp_handler_errors")
            if self.console is not None:
                self.console.error(f"tcp {flow.local[1]} handler failed: {exc!r}")
            flow.abort()
            return
        if flow.connection.state != State.CLOSED:
            await flow.close()

    def _arm_timer(self) -> None:
        deadlines = [d for d in (self.tcp.next_deadline(), self.arp.next_deadline(),
                                 self.reassembler.next_deadline(),
                                 self.dhcp.next_deadline() if self.dhcp else None)
                     if d is not None]
        if not deadlines or self._closed:
            return
        when = min(deadlines)
        if self._timer is not None:
            if self._timer_at is not None and self._timer_at <= when:
                return
            self._timer.cancel()
        self._timer_at = when
        self._timer = self.loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        now = self.loop.time()
        try:
            self.tcp.poll(now)
            frames, dropped = self.arp.poll(now)
            for frame in frames:
                self.netif.send(frame)
            if dropped:
                self.counters["arp_unresolved_drops"] = \
                    self.counters.get("arp_unresolved_drops", 0) + len(dropped)
            self.reassembler.expire(now)
            if self.dhcp is not None:
                self._dhcp_out(self.dhcp.poll(now))
        except Exception as exc:
            self._internal_error("timer handling", exc)
        self.flush()

    # ------------------------------------------------------------------ DHCP

    async def run_dhcp(self, timeout: float | None = 30.0, hostname: str | None = None) -> None:
        """Configure the address by DHCP; returns once bound (keeps renewing afterwards)."""
        client = dhcp.DhcpClient(self.netif.mac, self.rand, hostname=hostname)
        self.dhcp = client
        self.dhcp_port_open = True
        self.udp_promiscuous = DirectUdpEndpoint(self, _ANY, dhcp.CLIENT_PORT, self._dhcp_input)
        self._dhcp_bound = self.loop.create_future()
        self._dhcp_out(client.start(self.loop.time()))
        self._arm_timer()
        async with asyncio.timeout(timeout):
            await self._dhcp_bound

    def _dhcp_input(self, payload: bytes, peer: tuple[str, int]) -> None:
        client = self.dhcp
        if client is None or peer[1] != dhcp.SERVER_PORT:
            return None
        try:
            out = client.input(payload, self.loop.time())
        except ParseError as exc:
            self._count(exc.counter)
            return None
        self._dhcp_out(out)
        return None

    def _dhcp_out(self, out: list[tuple[bytes, bytes]]) -> None:
        client = self.dhcp
        if client is None:
            return
        if client.lease_changed:
            client.lease_changed = False
            lease = client.lease
            if lease is None:
                self.set_config(None)
                if self.console is not None:
                    self.console.warning("dhcp: lease lost")
            else:
                self.set_config(Ipv4Config(lease.address, lease.prefix_len, lease.router))
                self.announce()
                if self.console is not None:
                    self.console.info(f"dhcp: bound to {self.config}")
                if self._dhcp_bound is not None and not self._dhcp_bound.done():
                    self._dhcp_bound.set_result(None)
        src = self.config.address if self.config is not None else _ANY
        for dst, payload in out:
            self.udp_send(src, dhcp.CLIENT_PORT, dst, dhcp.SERVER_PORT, payload)

    # ------------------------------------------------------------------ Stack interface

    def _bind_ip(self, addr: AddressLike | None) -> bytes:
        ip = bind_address(addr)
        if ip.version != 4:
            raise AddressNotAvailable(f"cannot bind to {ip}: this stack has no IPv6 address")
        raw = ip.packed
        if raw != _ANY and raw not in self._local:
            raise AddressNotAvailable(f"cannot bind to {ip}: not an address of this stack")
        return raw

    @staticmethod
    def _taken(bound: dict, ip: bytes, port: int) -> bool:
        """Whether ``ip:port`` clashes with a bound one: the same address, or either of the
        two is the wildcard (Linux's rule for listening ports)."""
        if ip == _ANY:
            return any(p == port for _ip, p in bound)
        return (ip, port) in bound or (_ANY, port) in bound

    async def udp_listen(self, addr: AddressLike | None, port: int, handler: DatagramHandler,
                         *, reply_cache: ReplyCache | None = None) -> UdpEndpoint:
        """Bind a UDP port; ``port`` 0 picks a free ephemeral one.  The datagram fast path
        answers from ``reply_cache`` before calling the handler."""
        ip = self._bind_ip(addr)
        if port == 0:
            port = self._free_port(lambda p: self._taken(self._udp, ip, p))
        if self._taken(self._udp, ip, port):
            raise AddressInUse(f"cannot bind UDP {ipv4.ntoa(ip)}:{port}: already in use")
        ep = DirectUdpEndpoint(self, ip, port, handler, reply_cache)
        self._udp[(ip, port)] = ep
        self._udp_keys[(int.from_bytes(ip, "big") << 16) | port] = ep
        return ep

    async def tcp_listen(self, addr: AddressLike | None, port: int, handler: FlowHandler, *,
                         backlog: int = 128) -> TcpListener:
        """Listen on a TCP port."""
        ip = self._bind_ip(addr)
        if port == 0:
            port = self._free_port(lambda p: self._taken(self.tcp.listeners, ip, p))
        if self._taken(self.tcp.listeners, ip, port):
            raise AddressInUse(f"cannot listen on TCP {ipv4.ntoa(ip)}:{port}: already in use")
        listener = self.tcp.listen(ip, port, backlog)
        wrapped = DirectTcpListener(self, listener, handler)
        self._listeners[listener] = wrapped
        self._handlers[listener] = handler
        return wrapped

    def _free_port(self, used: Callable[[int], bool]) -> int:
        lo, hi = EPHEMERAL
        start = lo + int.from_bytes(self.rand(4), "big") % (hi - lo + 1)
        for i in range(hi - lo + 1):
            port = lo + (start - lo + i) % (hi - lo + 1)
            if not used(port):
                return port
        raise AddressInUse("no free port")

    async def tcp_connect(self, addr: AddressLike, port: int, *,
                          timeout: float | None = None) -> Flow:
        """Active open; raises ``ConnectionRefusedError``, ``TimeoutError``..."""
        ip = ip_address(addr)
        if ip.version != 4:
            raise NetworkUnreachable(f"cannot connect to {ip}: this stack has no IPv6")
        dst = ip.packed
        src = self.source_for(dst)
        if src == _ANY:
            raise NetworkUnreachable("network is unreachable: no address configured")
        lport = self._free_port(lambda p: (src, p, dst, port) in self.tcp.conns)
        conn = self.tcp.connect(src, lport, dst, port, self.loop.time())
        flow = DirectFlow(self, conn)
        self.flush()
        try:
            async with asyncio.timeout(timeout):
                while conn.state in (State.SYN_SENT, State.SYN_RECEIVED):
                    await flow._wait()
        except TimeoutError:
            flow.abort()
            raise
        if conn.state == State.CLOSED:
            raise conn.error or ConnectionResetError("connection closed")
        return flow

    async def close(self) -> None:
        """Close every endpoint, listener and flow, then the netif."""
        if self._closed:
            return
        for ep in list(self._udp.values()):
            ep.close()
        for listener in list(self._listeners.values()):
            listener.close()
        now = self.loop.time()
        for conn in list(self.tcp.conns.values()):
            if conn.state != State.CLOSED:
                conn.app_abort(now)
        self.flush()
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        if self._timer is not None:
            self._timer.cancel()
        self.netif.close()
