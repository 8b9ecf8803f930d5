"""The OpenFlow switch appliance: wires the sans-IO engines to the devices it is given.

Nothing here knows OpenFlow.  Each ``netif()`` port ``portN`` is OpenFlow port N; its batches
of received frames go to :meth:`.switch.Switch.process` (or, in fail-standalone mode while no
controller is connected, to :class:`.learning.LearningSwitch`), and the frames that come out
leave with one ``send_many`` per port.  The control channel is a ``stack.tcp_connect`` to
the controller carrying a :class:`.connection.Connection`: its HELLO goes first, each message
it frames goes to :meth:`.switch.Switch.handle`, and what the engine emits (replies, errors,
PACKET_IN, FLOW_REMOVED) is written back by one writer task, so the engine's order is the
wire's.  A lost or refused connection is retried with exponential backoff between
``--reconnect-min`` and ``--reconnect-max``; messages emitted while no channel is open are
counted and dropped (a PACKET_IN is only worth anything to the controller that asked).
Flow timeouts are one ``loop.call_at`` timer for the engine's ``next_deadline()``, and every
``now`` is the ``Clock`` device's.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fata.devices import KV, Clock, Console, Flow, Lifecycle, Netif, Random, Stack
from fata.devices.kv import KeyNotFound
from fata.devices.netif import BatchReceiver
from fata.tls import TLSConfig
from fata.tls.certs import load_pem_certificates
from fata.tls.flow import connect as tls_connect

from .connection import Closed, Connection, Negotiated, Received, Rejected
from .learning import LearningSwitch
from .liveness import Due, Liveness
from .messages import EchoRequest, PacketIn
from .roles import ASYNC, Roles
from .switch import Emitted, Switch, SwitchPort

OUTBOX_LIMIT = 1 << 20  # bytes for the controller queued before PACKET_INs are dropped


def split_scheme(text: str) -> tuple[bool, str]:
    """``tls:HOST:PORT`` (True), ``tcp:HOST:PORT`` or ``HOST:PORT`` (False), and the rest."""
    for scheme, tls in (("tls:", True), ("tcp:", False)):
        if text.startswith(scheme):
            return tls, text[len(scheme):]
    return False, text


def channel_tls(store: KV, ca: str, random: Callable[[int], bytes]) -> TLSConfig:
    """The TLS client configuration of a ``tls:`` channel: the controller's certificate
    must chain to a certificate in ``--ca`` (PEM, read from the run-time store ``tls``)
    and name the address connected to.  ValueError says what is wrong."""
    if not ca:
        raise ValueError("--controller tls:...: give the controller's CA with --ca FILE")
    try:
        pem = store.get(ca)
    except (KeyNotFound, OSError) as exc:
        raise ValueError(f"--ca {ca}: cannot read: {exc}") from None
    try:
        anchors = load_pem_certificates(pem)
    except ValueError:
        anchors = []
    if not anchors:
        raise ValueError(f"--ca {ca}: no PEM certificate in it")
    return TLSConfig(random=random, trust_store=anchors)


@dataclass(frozen=True)
class Target:
    """One ``--controller``: address, port, whether TLS, and its name for the log."""

    host: str
    port: int
    tls: bool

    @classmethod
    def parse(cls, text: str) -> Target:
        tls, address = split_scheme(text)
        return cls(*parse_controller(address), tls)

    @property
    def name(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'tls:' if self.tls else ''}{host}:{self.port}"


def parse_controller(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` to an address and port, or ValueError saying why."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--controller {text!r}: expected HOST:PORT")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"--controller {text!r}: {host!r} is not an IP address") from None
    return host, int(port)


def parse_datapath_id(text: str, first_mac: bytes) -> int:
    """``--datapath-id`` (decimal or ``0x`` hex), or the first port's MAC as a number."""
    if not text:
        return int.from_bytes(first_mac, "big")
    value = int(text, 0)
    if not 0 <= value < 1 << 64:
        raise ValueError(f"--datapath-id {text!r} does not fit in 64 bits")
    return value


class _Channel:
    """One open TCP connection to the controller: the codec's engine and an ordered
    outbox, drained by one writer task so writes never overtake each other."""

    def __init__(self, flow: Flow, limit: int = OUTBOX_LIMIT, name: str = "") -> None:
        self.flow = flow
        self.name = name
        self.conn = Connection()
        self.negotiated = False
        self.limit = limit
        self._out = bytearray()
        self._writing = 0  # bytes of the write under way
        self._ready = asyncio.Event()
        self._drained = asyncio.Event()
        self._drained.set()
        self._closing = False

    @property
    def backlog(self) -> int:
        """Bytes queued for the controller and not yet taken by the transport."""
        return len(self._out) + self._writing

    @property
    def over_limit(self) -> bool:
        return self.backlog > self.limit

    def flush(self) -> None:
        """Move what the engine queued into the outbox and wake the writer."""
        data = self.conn.data_to_send()
        if data:
            self._out += data
            self._ready.set()
            if self.over_limit:
                self._drained.clear()

    async def drained(self) -> None:
        """Until the backlog is back under the limit."""
        await self._drained.wait()

    async def writer(self) -> None:
        """Write the outbox as it fills (what arrives during a write goes in the next one,
        so the flow's backpressure batches messages); after :meth:`close_after_flush`,
        return once it is empty."""
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self._out:
                data = bytes(self._out)
                self._out.clear()
                self._writing = len(data)
                await self.flow.write(data)
                self._writing = 0
                if not self.over_limit:
                    self._drained.set()
            if self._closing:
                return

    def close_after_flush(self) -> None:
        """Let the writer finish once the outbox is written."""
        self._closing = True
        self._ready.set()


class SwitchAppliance:
    """The running switch: engine, fallback, ports, the controller channel and its timer."""

    def __init__(self, ports: dict[int, Netif], stack: Stack, clock: Clock, console: Console,
                 args: argparse.Namespace, tls: TLSConfig | None = None) -> None:
        self.ports = ports
        self.stack = stack
        self.clock = clock
        self.console = console
        given = args.controller
        self.targets = [Target.parse(text) for text in
                        ([given] if isinstance(given, str) else list(given))]
        if not self.targets:
            raise ValueError("give at least one --controller")
        self.tls = tls
        if any(t.tls for t in self.targets) and tls is None:
            raise ValueError("--controller tls:...: no TLS configuration (--ca) given")
        self.roles = Roles()
        self.standalone = args.fail_mode == "standalone"
        self.reconnect_min = float(args.reconnect_min)
        self.reconnect_max = max(float(args.reconnect_max), self.reconnect_min)
        self.connect_timeout = float(args.connect_timeout)
        self.probe_interval = float(getattr(args, "probe_interval", 5.0))
        self.outbox_limit = int(getattr(args, "outbox_limit", OUTBOX_LIMIT))
        self.packet_ins_dropped = 0  # PACKET_INs over the outbox's limit
        self.link_check = float(getattr(args, "link_check", 1.0))
        self._links: dict[int, bool] = {}
        self._link_timer: asyncio.TimerHandle | None = None
        self._probes = 0
        first = ports[min(ports)]
        self.switch = Switch(parse_datapath_id(args.datapath_id, first.mac), [
            SwitchPort(no, netif.name.encode()[:16], netif.mac) for no, netif in ports.items()
        ], now=clock.monotonic())
        self.learning = LearningSwitch(ports, aging=float(args.mac_aging))
        self.channels: list[_Channel] = []  # those whose HELLO exchange succeeded
        self.connections = 0
        self.undelivered = 0  # messages emitted with no controller to take them
        self.local_dropped = 0  # frames to OFPP_LOCAL: this switch has no local port
        self._timer: asyncio.TimerHandle | None = None
        self._timer_for: float | None = None

    # --- ports ------------------------------------------------------------------------

    def start_ports(self) -> None:
        """Start every port in wire mode (a switch forwards frames, so they must arrive with
        checksums complete and none over the MTU); single frames join the batch path."""
        for port_no, netif in self.ports.items():
            batch = self._batch_receiver(port_no)
            netif.start(lambda frame, _trusted, batch=batch: batch([frame], b"\1"), batch,
                        wire=True)

    def watch_links(self) -> None:
        """Check every port's link now and every ``--link-check`` seconds after: a change
        goes to the engine, which reports it (PORT_STATUS) and fails over on it."""
        for port_no, netif in self.ports.items():
            up = netif.link_up
            if self._links.get(port_no, True) != up:
                self.console.info(f"port {port_no} ({netif.name}): link "
                                  + ("up" if up else "down"))
                self._emit(self.switch.link_changed(port_no, up))
            self._links[port_no] = up
        if self.link_check > 0:
            self._link_timer = asyncio.get_running_loop().call_later(self.link_check,
                                                                     self.watch_links)

    def _batch_receiver(self, port_no: int) -> BatchReceiver:
        def batch(frames: Sequence[bytes], trusted: bytes) -> None:
            now = self.clock.monotonic()
            if self.standalone and self.channel is None:
                self._send_frames(self.learning.process(port_no, frames, now))
            else:
                self._emit(self.switch.process(port_no, frames, now))
        return batch

    def _send_frames(self, frames: dict[int, list[bytes]]) -> None:
        for port_no, out in frames.items():
            netif = self.ports.get(port_no)
            if netif is None:
                self.local_dropped += len(out)
            else:
                netif.send_many([(frame,) for frame in out])

    @property
    def channel(self) -> _Channel | None:
        """The first connected controller's channel, None while none is connected."""
        return self.channels[0] if self.channels else None

    def _emit(self, out: Emitted, origin: _Channel | None = None) -> None:
        """Carry out what an engine call produced, then re-arm the flow timer.  Replies go
        to ``origin``, the channel whose request made them; the asynchronous messages to
        every connected controller whose role and async configuration take them."""
        if out.frames:
            self._send_frames(out.frames)
        touched: list[_Channel] = []
        for message in out.messages:
            if isinstance(message, ASYNC):
                to = [c for c in self.channels if self.roles.wants(c, message)]
            else:
                to = [origin] if origin is not None and origin in self.channels else []
            if not to:
                self.undelivered += 1
            for channel in to:
                if isinstance(message, PacketIn) and channel.over_limit:
                    self.packet_ins_dropped += 1  # a controller not reading: the switch's
                    continue  # memory stays bounded
                channel.conn.send(message)
                channel.flush()
                touched.append(channel)
        for channel in dict.fromkeys(touched):
            channel.flush()
        self._arm_timer()

    # --- time -------------------------------------------------------------------------

    def _arm_timer(self) -> None:
        deadline = self.switch.next_deadline()
        if deadline == self._timer_for:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_for = deadline
        if deadline is not None:
            loop = asyncio.get_running_loop()
            delay = max(0.0, deadline - self.clock.monotonic())
            self._timer = loop.call_at(loop.time() + delay, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_for = None
        self._emit(self.switch.on_timer(self.clock.monotonic()))

    def stop_timer(self) -> None:
        """Cancel the flow and link timers (stopping: nothing may run after the devices
        close)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._link_timer is not None:
            self._link_timer.cancel()
            self._link_timer = None

    # --- the control channel ----------------------------------------------------------

    async def control(self) -> None:
        """Stay connected to the controller: connect, serve, and on any loss wait the
        backoff (doubling up to ``--reconnect-max``, back to ``--reconnect-min`` after a
        connection that got as far as a HELLO) and try again."""
        await asyncio.gather(*(self._control(target) for target in self.targets))

    async def _control(self, target: Target) -> None:
        """One controller's connection, kept up."""
        host, port, name = target.host, target.port, target.name
        delay = self.reconnect_min
        while True:
            try:
                flow = await self.stack.tcp_connect(host, port, timeout=self.connect_timeout)
                if target.tls:
                    flow = await self._secure(flow, host)
            except (OSError, TimeoutError) as exc:
                self.console.debug(f"controller {name}: {exc or type(exc).__name__}; "
                                   f"retrying in {delay:g}s")
            else:
                channel = _Channel(flow, self.outbox_limit, name)
                reason = await self._serve(channel)
                self.console.info(f"controller {name} disconnected: {reason}")
                if channel.negotiated:
                    delay = self.reconnect_min
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.reconnect_max)

    async def _secure(self, flow: Flow, host: str) -> Flow:
        """The TLS handshake on a new connection (the controller's certificate checked
        against ``--ca`` and ``host``), within ``--connect-timeout``."""
        assert self.tls is not None
        try:
            return await asyncio.wait_for(
                tls_connect(flow, self.tls, host, clock=self.clock.time),
                self.connect_timeout)
        except BaseException:
            flow.abort()
            raise

    async def _serve(self, channel: _Channel) -> str:
        """One connection until it ends; the reason, for the log."""
        flow = channel.flow
        channel.flush()  # our HELLO
        writer = asyncio.get_running_loop().create_task(channel.writer())
        reading: asyncio.Future[bytes] | None = None
        alive = Liveness(self.probe_interval, self.clock.monotonic())
        try:
            while True:
                pause = None
                if reading is None and channel.over_limit:
                    # Replies the controller does not read: read no more requests (their
                    # replies would grow the outbox) until the transport has taken them.
                    pause = asyncio.ensure_future(channel.drained())
                elif reading is None:
                    reading = asyncio.ensure_future(flow.read())
                deadline = alive.next_deadline()
                timeout = None if deadline is None else max(
                    0.0, deadline - self.clock.monotonic())
                done, _ = await asyncio.wait({pause or reading, writer}, timeout=timeout,
                                             return_when=asyncio.FIRST_COMPLETED)
                if pause is not None:
                    pause.cancel()
                    if writer in done:
                        writer.result()
                        return "the writer stopped"
                    if not done:
                        due = alive.on_timer(self.clock.monotonic())
                        if due is Due.DEAD:
                            return (f"no message for {2 * self.probe_interval:g}s, an echo "
                                    "request unanswered")
                    continue
                if not done:  # quiet for a while: probe, or give up
                    due = alive.on_timer(self.clock.monotonic())
                    if due is Due.DEAD:
                        return (f"no message for {2 * self.probe_interval:g}s, an echo "
                                "request unanswered")
                    if due is Due.PROBE:
                        channel.conn.send(EchoRequest(b"", xid=self._probe_xid()))
                        channel.flush()
                    continue
                if reading not in done:
                    reading.cancel()
                    writer.result()  # the write error that ended it
                    return "the writer stopped"
                data = reading.result()
                reading = None
                if not data:
                    return "closed by the controller"
                alive.heard(self.clock.monotonic())
                closed = self._events(channel, data)
                channel.flush()
                if closed is not None:  # the engine ended it: its last words go out first
                    channel.close_after_flush()
                    await asyncio.wait_for(writer, self.connect_timeout)
                    return closed
        except (OSError, TimeoutError) as exc:
            return f"{type(exc).__name__}: {exc}"
        finally:
            self._forget(channel)
            if reading is not None:
                reading.cancel()
            writer.cancel()
            await flow.close()

    def _probe_xid(self) -> int:
        self._probes += 1
        return 0x70000000 + (self._probes & 0x0FFFFFFF)  # apart from the engine's own xids

    def _events(self, channel: _Channel, data: bytes) -> str | None:
        """Feed ``data`` to the channel's engine and act on its events; the reason when it
        closed the channel."""
        for event in channel.conn.receive_data(data):
            if isinstance(event, Negotiated):
                self.channels.append(channel)
                self.roles.add(channel)
                channel.negotiated = True
                self.connections += 1
                self.console.info(f"controller {channel.name} connected (OpenFlow "
                                  f"0x{event.version:02x})")
            elif isinstance(event, Received):
                answers = self.roles.handle(channel, event.message)
                if answers is None:
                    self._emit(self.switch.handle(event.message, self.clock.monotonic()),
                               channel)
                else:
                    for answer in answers:
                        channel.conn.send(answer)
            elif isinstance(event, Rejected):
                self.console.debug(f"refused from the controller: {event.malformed.reason}")
            elif isinstance(event, Closed):
                self._forget(channel)  # nothing more may be queued on it
                return event.reason
        return None

    def _forget(self, channel: _Channel) -> None:
        if channel in self.channels:
            self.channels.remove(channel)
            self.roles.remove(channel)


async def start(*, stack: Stack, clock: Clock, console: Console, lifecycle: Lifecycle,
                tls: KV, random: Random, args: argparse.Namespace, **devices: Netif) -> None:
    """Switch between the ports (the devices ``port1`` .. ``portN``: OpenFlow ports 1 ..
    N) until stopped, keeping a controller channel up."""
    ports = {int(name.removeprefix("port")): netif for name, netif in devices.items()
             if name.startswith("port") and name[4:].isdigit()}
    ports = dict(sorted(ports.items()))
    given = [args.controller] if isinstance(args.controller, str) else list(args.controller)
    secure = any(split_scheme(text)[0] for text in given)
    config = channel_tls(tls, args.ca, random.bytes) if secure else None
    app = SwitchAppliance(ports, stack, clock, console, args, config)
    app.start_ports()
    app.watch_links()
    console.info(f"switch up: datapath 0x{app.switch.datapath_id:016x}, ports "
                 + ", ".join(f"{no}={n.name}" for no, n in ports.items())
                 + f", fail mode {args.fail_mode}, controller "
                 + ", ".join(t.name for t in app.targets))
    control = asyncio.get_running_loop().create_task(app.control())
    control.add_done_callback(lambda task: task.cancelled() or console.error(
        f"controller channel stopped: {task.exception()!r}"))
    try:
        await lifecycle.wait_stopped()
    finally:
        control.cancel()
        app.stop_timer()
        rx = sum(p.rx_packets for p in app.switch.ports.values())
        tx = sum(p.tx_packets for p in app.switch.ports.values())
        console.info(f"switch down: {app.connections} controller connections, OpenFlow "
                     f"pipeline {rx} frames in, {tx} out; standalone {app.learning.flooded} "
                     f"flooded, {app.learning.filtered} filtered; {app.undelivered} "
                     f"messages with no controller, {app.packet_ins_dropped} packet-ins over "
                     f"the outbox limit, {app.local_dropped} frames to LOCAL dropped")
