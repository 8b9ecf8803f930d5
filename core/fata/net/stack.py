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
import weakref
from collections.abc import Callable, Sequence

from fata.devices import (
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
    call_handler,
    flow_failure,
    handler_failure,
    ip_address,
    serve_flow,
)
from fata.devices.netif import Netif
from fata.net import arp, checksum, dhcp, icmp, ipv4, tcp_wire, udp, udp_fast
from fata.net.errors import ParseError
from fata.net.flows import DirectFlow, DirectTcpListener, DirectUdpEndpoint, address
from fata.net.ip import IpLayer, Link
from fata.net.ipv4 import Ipv4Config
from fata.net.tcp import Connection, Listener, State, TcpConfig, TcpEngine
from fata.net.tcp import output as tcp_output
from fata.runtime import trace

EPHEMERAL = (49152, 65535)
_ANY = ipv4.ANY
_IP = ipaddress.IPv4Address


class _Port:
    """One interface of a ``DirectStack``: its netif, its ``Link`` in the IP layer, and the
    datagram fast path's state for it."""

    def __init__(self, netif: Netif, link: Link, fast: udp_fast.FastPath) -> None:
        self.netif = netif
        self.link = link
        self.fast = fast
        fast.room = netif.mtu - 28
        fast.offload = netif.csum_offload

    def configured(self) -> None:
        """The link's address changed: forget what replies reused."""
        self.fast.routes = {}
        config = self.link.config
        self.fast.ours = None if config is None else int.from_bytes(config.address, "big")

    def send_replies(self, out: list[tuple[bytes, ...]]) -> None:
        """The fast path's replies to a batch, in one call to the device."""
        if self.netif.csum_offload:
            self.netif.send_many(out, csum_start=34, csum_offset=6)  # UDP checksum at 14+20+6
        else:
            self.netif.send_many(out)


class DirectStack(Stack):
    """Fata's own TCP/IP over one or more ``Netif`` ports: the wiring of the sans-IO engines
    (``fata.net.ip`` for Ethernet, ARP, IPv4, ICMP, routing and forwarding; UDP and TCP
    above it), one event-loop timer for their earliest deadline, and the flows."""

    def __init__(self, netif: Netif, config: Ipv4Config | None, *,
                 tcp_config: TcpConfig | None = None, console: Console | None = None,
                 rand: Callable[[int], bytes] = os.urandom,
                 congestion: str = "newreno") -> None:
        self.console = console
        self.rand = rand
        self.loop = asyncio.get_running_loop()
        if tcp_config is None:
            tcp_config = TcpConfig(mss=netif.mtu - 40, congestion=congestion)
            if netif.tso and netif.csum_offload:
                tcp_config.tso_max = 65000
        self.tcp = TcpEngine(tcp_config, rand)
        self.ip = IpLayer(self._transmit, int.from_bytes(rand(2), "big"))
        self.ip.handlers[ipv4.PROTO_TCP] = self._tcp_input
        self.ip.handlers[ipv4.PROTO_UDP] = self._udp_input
        self.ports: list[_Port] = []
        self.counters: dict[str, int] = {}
        self._udp: dict[tuple[bytes, int], DirectUdpEndpoint] = {}
        self._listeners: dict[Listener, DirectTcpListener] = {}
        # every listener's handler, open or closed, for as long as a connection refers to it
        self._handlers: weakref.WeakKeyDictionary[Listener, FlowHandler] = \
            weakref.WeakKeyDictionary()
        self._tasks: set[asyncio.Task[None]] = set()
        # datagram fast path state, keyed by integers (no tuple or bytes objects per packet)
        self._names: dict[int, ipaddress.IPv4Address] = {}
        self._udp_keys: dict[int, DirectUdpEndpoint] = {}  # (ip << 16) | port -> endpoint
        self._flush_scheduled = False
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._started = False
        self._closed = False
        self.udp_promiscuous: DirectUdpEndpoint | None = None
        self.dhcp: dhcp.DhcpClient | None = None
        self._dhcp_bound: asyncio.Future[None] | None = None
        self.add_interface(netif, config)

    # ------------------------------------------------------------------ configuration

    def add_interface(self, netif: Netif, config: Ipv4Config | None) -> int:
        """Another port (before ``start``); returns its index in ``ports`` and ``ip.links``."""
        link = self.ip.add_link(getattr(netif, "name", f"net{len(self.ports)}"), netif.mac,
                                netif.mtu, csum_offload=netif.csum_offload, tso=netif.tso)
        port = _Port(netif, link, udp_fast.FastPath(
            self._udp_keys, self._names, ident=int.from_bytes(self.rand(2), "big")))
        port.fast.learn = lambda peer: self._route_for(port, peer)
        link.arp.moved = lambda ip: port.fast.routes.pop(int.from_bytes(ip, "big"), None)
        self.ports.append(port)
        self.set_config(config, link.index)
        if self._started:
            self._start_port(port)
        return link.index

    @property
    def netif(self) -> Netif:
        """The first port's device (the only one of a one-interface stack)."""
        return self.ports[0].netif

    @property
    def config(self) -> Ipv4Config | None:
        """The first port's address."""
        return self.ports[0].link.config

    @property
    def arp(self) -> arp.Arp:
        """The first port's ARP engine."""
        return self.ports[0].link.arp

    @property
    def reassembler(self) -> ipv4.Reassembler:
        """The IP layer's fragment reassembly."""
        return self.ip.reassembler

    @property
    def forwarding(self) -> bool:
        """Whether packets for others are routed between the ports (a router's job).

        A forwarding stack asks its ports for frames as a wire carries them (checksums
        finished, no super-segments), since what it forwards must fit the next link; the
        ports are re-attached when it changes after ``start``."""
        return self.ip.forwarding

    @forwarding.setter
    def forwarding(self, value: bool) -> None:
        changed = value != self.ip.forwarding
        self.ip.forwarding = value
        if self._started and changed:
            for port in self.ports:
                self._attach(port)

    def set_config(self, config: Ipv4Config | None, index: int = 0) -> None:
        """(Re)configure port ``index``'s address (used at start and by DHCP)."""
        self.ip.configure(index, config)
        self.ports[index].configured()

    def start(self) -> None:
        """Attach to the netifs and announce our addresses (gratuitous ARP)."""
        self._started = True
        for port in self.ports:
            self._start_port(port)

    def _start_port(self, port: _Port) -> None:
        self._attach(port)
        self._announce(port)

    def _attach(self, port: _Port) -> None:
        port.netif.start(lambda frame, trusted: self._on_frames(
            (frame,), b"\x01" if trusted else b"\x00", port),
            lambda frames, trusted: self._on_frames(frames, trusted, port),
            wire=self.ip.forwarding)

    def announce(self) -> None:
        """Send a gratuitous ARP for each address."""
        for port in self.ports:
            self._announce(port)

    def _announce(self, port: _Port) -> None:
        if port.link.config is not None:
            port.netif.send(port.link.arp.gratuitous(port.link.config.address))

    @property
    def interfaces(self) -> list[Interface]:
        """The ports, each with its configured address (none before DHCP)."""
        out = []
        for port in self.ports:
            config = port.link.config
            addresses = () if config is None else (ipaddress.IPv4Interface(
                (_IP(config.address), config.prefix_len)),)
            out.append(Interface(port.link.name, port.netif.mac, port.netif.mtu, addresses))
        return out

    def source_for(self, dst: bytes) -> bytes:
        """The source address to use towards ``dst``: ours on the link it leaves by."""
        return self.ip.source_for(dst)

    def stats(self) -> dict[str, int]:
        """Every drop and event counter of every layer, prefixed by layer."""
        out = dict(self.counters)
        for name, value in self.ip.counters.items():
            out[name] = out.get(name, 0) + value
        layers = [("arp", port.link.arp.counters) for port in self.ports]
        layers += [("dhcp", self.dhcp.counters if self.dhcp else {}),
                   ("reasm", self.ip.reassembler.counters), ("tcp", self.tcp.counters)]
        for prefix, counters in layers:
            for name, value in counters.items():
                key = f"{prefix}_{name}"
                out[key] = out.get(key, 0) + value
        return out

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    def _transmit(self, index: int, pieces: list[bytes], offload: dict[str, int]) -> None:
        self.ports[index].netif.send(pieces, **offload)

    # ------------------------------------------------------------------ receive

    def _on_frame(self, frame: bytes, trusted: bool) -> None:
        """One received frame on the first port (devices that deliver one at a time)."""
        self._on_frames((frame,), b"\x01" if trusted else b"\x00")

    def _on_frames(self, frames: Sequence[bytes], trusted: bytes,
                   state: _Port | None = None) -> None:
        """A batch of received frames on one port; ``trusted[i]``: the device vouched for
        frame i.

        Plain unicast UDP datagrams for a bound port are served right here, in one pass
        each: request/response appliances (DNS) live on this path, so it avoids the general
        path's per-layer objects (one ``struct`` unpack for all three headers, the reply's
        IP and UDP headers in one pack, the UDP checksum left to the device when it can, the
        peer's Ethernet header from a per-peer cache), and the replies to the whole batch go
        to the device in one ``send_many``.  Anything unusual (IP options, fragments, not
        ours, no cached next hop, a bad checksum, hooks to run) takes the general path,
        which also does the counting; replies gathered so far are sent first, so the order
        is kept.
        """
        if state is None:
            state = self.ports[0]
        ip = self.ip
        link = state.link
        now = self.loop.time()
        if ip.prerouting:  # hooks see every packet: no fast path then
            actions: list[tuple] = [(udp_fast.GENERAL, f, v) for f, v in zip(frames, trusted,
                                                                               strict=True)]
        else:
            actions = udp_fast.answer(frames, trusted, state.fast, now)
        for action in actions:
            kind = action[0]
            if kind == udp_fast.REPLIES:
                state.send_replies(action[1])
            elif kind == udp_fast.GENERAL:
                try:
                    ip.frame_input(link, action[1], bool(action[2]), now)
                except Exception as exc:  # a bug in a layer must not stop the port
                    self._internal_error("frame handling", exc)
            elif kind == udp_fast.SLOW:
                _kind, src, sport, dst, dport, reply = action
                self.udp_send(src.to_bytes(4, "big"), sport, dst.to_bytes(4, "big"), dport,
                              reply)
            elif action[1] is None:
                self._internal_error("datagram fast path", action[2])
            else:
                self._handler_failed(action[1], action[2])
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self.flush)

    def _handler_failed(self, ep: DirectUdpEndpoint, exc: Exception) -> None:
        self._count("udp_handler_errors")
        if self.console is not None:
            self.console.error(handler_failure(ep.local, exc))

    def _internal_error(self, what: str, exc: Exception) -> None:
        self._count("internal_errors")
        if self.console is not None:
            self.console.error(f"net: {what} failed: {exc!r}")

    def _route_for(self, state: _Port, peer: int) -> udp_fast.Route | None:
        """Cache what replies to on-link ``peer`` reuse, valid until its ARP entry expires
        (nothing while ARP does not know it).  Keyed by the peer alone, per port: the fast
        path only serves datagrams to the port's own address, the replies' source."""
        raw = peer.to_bytes(4, "big")
        link = state.link
        entry = link.arp.cache.get(raw)
        config = link.config
        if entry is None or config is None or not config.on_link(raw) or \
                entry[1] < self.loop.time():
            return None
        routes = state.fast.routes
        if len(routes) > 4096:
            routes.clear()
        route = routes[peer] = udp_fast.route_for(peer, config.address,
                                                  link.eth_header(entry[0]), entry[1])
        return route

    def _tcp_input(self, hdr: ipv4.Ipv4Header, payload: memoryview, trusted: bool,
                   packet: memoryview, link: Link) -> None:
        dst = hdr.dst
        pseudo = None if trusted else checksum.pseudo_header_ipv4(hdr.src, dst, 6, len(payload))
        seg = tcp_wire.parse(payload, pseudo)
        if dst not in self.ip.local:
            return
        self.tcp.input(hdr.src, dst, seg, self.loop.time())

    def _udp_input(self, hdr: ipv4.Ipv4Header, payload: memoryview, trusted: bool,
                   packet: memoryview, link: Link) -> None:
        sport, dport, data = udp.parse(payload, hdr.src, hdr.dst, not trusted)
        ep = self._udp.get((hdr.dst, dport)) or self._udp.get((_ANY, dport))
        if ep is None and self.ip.accept_any_udp and dport == 68:
            ep = self.udp_promiscuous
        if ep is None:
            self._count("udp_closed_port")
            if hdr.dst in self.ip.local and self.ip.icmp_error(
                    hdr, packet, icmp.unreachable(icmp.CODE_PORT_UNREACHABLE, packet)):
                self._count("icmp_unreachable_sent")
            return
        try:
            reply = call_handler(ep.handler, bytes(data), address(hdr.src, sport))
        except Exception as exc:
            self._handler_failed(ep, exc)
            return
        if reply is not None:
            src = hdr.dst if hdr.dst in self.ip.local else self.source_for(hdr.src)
            self.udp_send(src, dport, hdr.src, sport, reply)

    # ------------------------------------------------------------------ send

    def ip_send(self, src: bytes, dst: bytes, proto: int, payload: bytes) -> None:
        """Send one datagram, fragmenting it to the MTU if needed."""
        self.ip.send(src, dst, proto, payload, self.loop.time())

    def udp_send(self, src: bytes, sport: int, dst: bytes, dport: int, data: bytes) -> None:
        """Send one UDP datagram."""
        pseudo = checksum.pseudo_header_ipv4(src, dst, udp.PROTO, udp.HEADER_LEN + len(data))
        self.ip_send(src, dst, ipv4.PROTO_UDP, udp.build(sport, dport, data, pseudo))

    # ------------------------------------------------------------------ engine plumbing

    def flush(self) -> None:
        """Send what the TCP engine queued, wake flows, start handlers, re-arm the timer."""
        self._flush_scheduled = False
        tcp = self.tcp
        while tcp.outbox:
            out = tcp.outbox
            tcp.outbox = []
            now = self.loop.time()
            for src, dst, seg, mss in out:
                tcp_output.transmit(self.ip, src, dst, seg, mss, now)
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
        await serve_flow(handler, flow, lambda exc: self._flow_failed(flow, exc))

    def _flow_failed(self, flow: DirectFlow, exc: Exception) -> None:
        self._count("tcp_handler_errors")
        if self.console is not None:
            self.console.error(flow_failure(flow, exc))

    def _arm_timer(self) -> None:
        deadlines = [d for d in (self.tcp.next_deadline(), self.ip.next_deadline(),
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
            self.tcp.on_timer(now)
            self.ip.on_timer(now)
            if self.dhcp is not None:
                self._dhcp_out(self.dhcp.on_timer(now))
        except Exception as exc:
            self._internal_error("timer handling", exc)
        self.flush()

    # ------------------------------------------------------------------ DHCP

    async def run_dhcp(self, timeout: float | None = 30.0, hostname: str | None = None) -> None:
        """Configure the address by DHCP; returns once bound (keeps renewing afterwards)."""
        client = dhcp.DhcpClient(self.netif.mac, self.rand, hostname=hostname)
        self.dhcp = client
        self.ip.accept_any_udp = True
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
        if raw != _ANY and raw not in self.ip.local:
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
        traced = trace.wrap_datagram_handler(handler, f"udp:{port}")  # itself untraced
        ep = DirectUdpEndpoint(self, ip, port, traced,
                               reply_cache if traced is handler else None)
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
        wrapped = DirectTcpListener(self, listener)
        self._listeners[listener] = wrapped
        self._handlers[listener] = trace.wrap_flow_handler(handler, f"tcp:{port}")
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
        """Close every endpoint, listener and flow, then the netifs."""
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
        for port in self.ports:
            port.netif.close()
