"""The DNS appliance: wires the sans-IO engine to the devices it is given.

UDP: the engine's ``handle_udp`` *is* the datagram handler (one call per query, nothing
in between).  TCP: one task per connection runs a :class:`~fata_dns.tcp.TcpSession`
until the deadline it names (first message, whole message, idle), waited on with the
``Clock``; a :class:`~fata_dns.tcp.ConnectionTable` gives out the slots (per client, in
all), and a connection it evicts is aborted here.  SIGHUP (``lifecycle.on_reload``) reloads
every zone off the event loop and swaps the whole catalog at once, or logs the error and
keeps the old one; zones whose serial grew are NOTIFYed to the configured secondaries,
with message IDs from the ``Random`` device.  Zones are read only through the two ``KV``
devices (``sources.py``): ``--zone`` names keys of the run-time store ``zones``, and
without it the baked ``data`` is served.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import ipaddress

from fata.devices import KV, Clock, Console, Flow, Lifecycle, Random, Stack
from fata.runtime.reload import Reloader

from fata_dns.errors import ZoneError
from fata_dns.lookup import Catalog
from fata_dns.notify import NotifySender
from fata_dns.rrl import ResponseRateLimiter, RrlConfig, limited
from fata_dns.server import Server
from fata_dns.sources import load_catalog
from fata_dns.tcp import ConnectionTable, TcpSession, TcpState

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
WARM_SLICE = 256  # memo entries precomputed between two turns of the event loop


def serial_grew(old: int, new: int) -> bool:
    """RFC 1982 serial number arithmetic: is ``new`` greater than ``old``?"""
    return old != new and ((new - old) & 0xFFFFFFFF) < 0x80000000


def parse_target(text: str) -> tuple[str, int]:
    """``ADDR`` or ``ADDR:PORT`` (port 53 by default) for ``--notify``."""
    host, sep, port = text.rpartition(":")
    if not sep:
        return text, 53
    return host, int(port)


def networks(option: str, texts: list[str] | None) -> tuple[IPNetwork, ...]:
    """Addresses or CIDRs given to ``option``, or ValueError naming the one that is not."""
    out = []
    for text in texts or ():
        try:
            out.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(f"{option}: {text!r} is not an address or CIDR") from None
    return tuple(out)


class DnsAppliance:
    """The running appliance's state: the engine, its listeners, reload and NOTIFY."""

    def __init__(self, stack: Stack, data: KV, zones: KV, clock: Clock, random: Random,
                 console: Console, args: argparse.Namespace) -> None:
        self.stack = stack
        self.data = data
        self.zones = zones
        self.clock = clock
        self.console = console
        self.args = args
        self.zone_keys: list[str] = list(args.zone or [])
        self.notify_targets = [parse_target(t) for t in (args.notify or [])]
        self.idle_timeout = float(args.tcp_idle_timeout)
        self.initial_timeout = float(args.tcp_initial_timeout)
        self.message_timeout = float(args.tcp_message_timeout)
        self.rrl: ResponseRateLimiter | None = None
        self.tcp_table = ConnectionTable(int(args.tcp_max_connections),
                                         int(args.tcp_max_per_client))
        self._flows: dict[TcpSession, Flow] = {}
        self.tcp_timeouts = dict.fromkeys(TcpState, 0)
        self.notifier = NotifySender(random.bytes)
        self.server: Server | None = None
        self._notify_endpoint = None
        self._notify_wakeup = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()
        self.reloader = Reloader(console, "zones", (ZoneError,))

    async def run(self, lifecycle: Lifecycle) -> None:
        catalog = load_catalog(self.zone_keys, self.data, self.zones)
        self.server = Server(catalog, axfr_allow=list(self.args.axfr_allow or []),
                             memo_bytes=int(self.args.memo_bytes),
                             reply_cache_bytes=int(self.args.reply_cache_bytes))
        if not self.args.listen:  # the stack's own address: one command works on every target
            addresses = [a for a in self.stack.addresses if a.version == 4]
            self.args.listen = str(addresses[0]) if addresses else "0.0.0.0"
        handler, reply_cache = self.server.handle_udp, self.server.reply_cache
        self.rrl = None
        if self.args.rrl > 0:
            exempt = networks("--rrl-exempt", self.args.rrl_exempt)
            self.rrl = ResponseRateLimiter(RrlConfig(rate=self.args.rrl, slip=self.args.rrl_slip,
                                                     window=self.args.rrl_window, exempt=exempt))
            handler = limited(handler, self.rrl, self._zone_of, self.clock.monotonic)
            # Every other answer is accounted, so none may leave from below Python.
            reply_cache = dataclasses.replace(reply_cache, sources=exempt) if exempt else None
        udp = await self.stack.udp_listen(self.args.listen, self.args.port, handler,
                                          reply_cache=reply_cache)
        tcp = await self.stack.tcp_listen(self.args.listen, self.args.port, self.handle_flow)
        origins = ", ".join(f"{z.origin_text} (serial {z.serial})" for z in catalog.zones.values())
        self.console.info(f"serving {origins} on {self.args.listen}:{udp.local[1]} udp+tcp")
        if self.notify_targets:
            self._notify_endpoint = await self.stack.udp_listen(self.args.listen, 0,
                                                                self._notify_reply)
            self._spawn(self._notify_loop())
        self._spawn(self._warm(catalog))
        lifecycle.on_reload(lambda: self._spawn(self.reload()))
        try:
            await lifecycle.wait_stopped()
        finally:
            udp.close()
            tcp.close()
            for task in list(self._tasks):
                task.cancel()
            stats = self.server.stats
            self.console.info(
                f"stopping: {stats.queries_slow} queries on the full path, {stats.dropped} "
                f"dropped, {stats.formerr} FORMERR, {stats.notimp} NOTIMP, {stats.refused} "
                f"REFUSED, {stats.axfr} transfers ({stats.axfr_refused} refused), "
                f"{self._tcp_counters()}, {self._rrl_counters()}"
                f"{stats.internal_errors} internal errors")

    def _zone_of(self, qname: bytes) -> bytes:
        """The zone an NXDOMAIN for ``qname`` is accounted under (RRL)."""
        assert self.server is not None
        zone = self.server.catalog.zone_for(qname)
        return zone.origin if zone is not None else b""

    def _rrl_counters(self) -> str:
        if self.rrl is None:
            return ""
        c = self.rrl.counters
        return (f"rate limiting {c.sent} answers sent, {c.dropped} dropped, {c.slipped} "
                f"slipped, ")

    def _tcp_counters(self) -> str:
        t, timeouts = self.tcp_table, self.tcp_timeouts
        return (f"{t.refused_full + t.refused_per_client} TCP connections refused "
                f"({t.refused_per_client} over the per-client limit, {t.refused_full} with the "
                f"table full), {t.evicted} evicted before their first message, TCP timeouts "
                f"{timeouts[TcpState.INITIAL]} initial, {timeouts[TcpState.MESSAGE]} message, "
                f"{timeouts[TcpState.IDLE]} idle")

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _warm(self, catalog: Catalog) -> None:
        """Precompute the memo in slices, yielding to queries in between."""
        assert self.server is not None
        steps = self.server.warm()
        count = 0
        for count in steps:
            if count % WARM_SLICE == 0:
                await asyncio.sleep(0)
        self.console.debug(f"precomputed {count} answers")

    async def reload(self) -> None:
        """Re-read every zone; swap only if all of them load (SIGHUP)."""
        new = await self.reloader.load(
            lambda: load_catalog(self.zone_keys, self.data, self.zones))
        if new is None:
            return
        assert self.server is not None
        old = self.server.catalog
        self.server.load(new)
        self.console.info("reloaded " + ", ".join(
            f"{z.origin_text} (serial {z.serial})" for z in new.zones.values()))
        if self.notify_targets:
            now = self.clock.monotonic()
            for origin, zone in new.zones.items():
                before = old.zones.get(origin)
                if before is None or serial_grew(before.serial, zone.serial):
                    self.notifier.notify(zone, self.notify_targets, now)
                    self.console.info(f"NOTIFY {zone.origin_text} serial {zone.serial} to "
                                      + ", ".join(f"{h}:{p}" for h, p in self.notify_targets))
            self._notify_wakeup.set()
        self._spawn(self._warm(new))

    def _notify_reply(self, payload: bytes, peer: tuple[str, int]) -> None:
        self.notifier.on_reply(payload, peer)

    async def _notify_loop(self) -> None:
        while True:
            now = self.clock.monotonic()
            for message, target in self.notifier.on_timer(now):
                self._notify_endpoint.sendto(message, target)
            deadline = self.notifier.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - self.clock.monotonic())
            self._notify_wakeup.clear()
            try:
                await asyncio.wait_for(self._notify_wakeup.wait(), timeout)
            except TimeoutError:
                pass

    async def handle_flow(self, flow: Flow) -> None:
        """One TCP connection (RFC 7766): many queries, pipelined, until a deadline passes
        or the peer closes; refused or evicted as the connection table says."""
        session = TcpSession(flow.peer, self.clock.monotonic(), self.idle_timeout,
                             initial_timeout=self.initial_timeout,
                             message_timeout=self.message_timeout)
        admission = self.tcp_table.admit(session)
        if not admission.admitted:
            flow.abort()
            return
        if admission.evicted is not None:  # its task reads b"" and ends
            victim = self._flows.pop(admission.evicted, None)
            if victim is not None:
                victim.abort()
        self._flows[session] = flow
        try:
            while not session.closed:
                deadline = session.next_deadline()
                assert deadline is not None
                remaining = deadline - self.clock.monotonic()
                if remaining <= 0:
                    self.tcp_timeouts[session.state] += 1
                    break
                try:
                    data = await asyncio.wait_for(flow.read(), remaining)
                except TimeoutError:
                    continue  # the deadline is checked on the session's own terms
                if not data:
                    break
                assert self.server is not None
                for reply in session.receive(data, self.clock.monotonic(), self.server):
                    await flow.write(reply)
        except ConnectionError:
            pass
        finally:
            self.tcp_table.remove(session)
            self._flows.pop(session, None)
            try:
                await flow.close()
            except ConnectionError:
                pass


async def start(*, stack: Stack, data: KV, zones: KV, clock: Clock, random: Random,
                console: Console, lifecycle: Lifecycle, args: argparse.Namespace) -> None:
    """Entry point called by the Fata runtime."""
    await DnsAppliance(stack, data, zones, clock, random, console, args).run(lifecycle)
