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
from collections.abc import Sequence

from fata.devices import Clock, Console, Flow, Lifecycle, Netif, Stack
from fata.devices.netif import BatchReceiver

from .connection import Closed, Connection, Negotiated, Received, Rejected
from .learning import LearningSwitch
from .liveness import Due, Liveness
from .messages import EchoRequest
from .switch import Emitted, Switch, SwitchPort


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

    def __init__(self, flow: Flow) -> None:
        self.flow = flow
        self.conn = Connection()
        self.negotiated = False
        self._out = bytearray()
        self._ready = asyncio.Event()
        self._closing = False

    def flush(self) -> None:
        """Move what the engine queued into the outbox and wake the writer."""
        data = self.conn.data_to_send()
        if data:
            self._out += data
            self._ready.set()

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
                await self.flow.write(data)
            if self._closing:
                return

    def close_after_flush(self) -> None:
        """Let the writer finish once the outbox is written."""
        self._closing = True
        self._ready.set()


class SwitchAppliance:
    """The running switch: engine, fallback, ports, the controller channel and its timer."""

    def __init__(self, ports: dict[int, Netif], stack: Stack, clock: Clock, console: Console,
                 args: argparse.Namespace) -> None:
        self.ports = ports
        self.stack = stack
        self.clock = clock
        self.console = console
        self.controller = parse_controller(args.controller)
        self.standalone = args.fail_mode == "standalone"
        self.reconnect_min = float(args.reconnect_min)
        self.reconnect_max = max(float(args.reconnect_max), self.reconnect_min)
        self.connect_timeout = float(args.connect_timeout)
        self.probe_interval = float(getattr(args, "probe_interval", 5.0))
        self._probes = 0
        first = ports[min(ports)]
        self.switch = Switch(parse_datapath_id(args.datapath_id, first.mac), [
            SwitchPort(no, netif.name.encode()[:16], netif.mac) for no, netif in ports.items()
        ], now=clock.monotonic())
        self.learning = LearningSwitch(ports, aging=float(args.mac_aging))
        self.channel: _Channel | None = None  # set once a HELLO exchange succeeded
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

    def _emit(self, out: Emitted) -> None:
        """Carry out what an engine call produced, then re-arm the flow timer."""
        if out.frames:
            self._send_frames(out.frames)
        if out.messages:
            channel = self.channel
            if channel is None:
                self.undelivered += len(out.messages)
            else:
                for message in out.messages:
                    channel.conn.send(message)
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
        """Cancel the flow timer (stopping: nothing may run after the devices close)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # --- the control channel ----------------------------------------------------------

    async def control(self) -> None:
        """Stay connected to the controller: connect, serve, and on any loss wait the
        backoff (doubling up to ``--reconnect-max``, back to ``--reconnect-min`` after a
        connection that got as far as a HELLO) and try again."""
        host, port = self.controller
        delay = self.reconnect_min
        while True:
            try:
                flow = await self.stack.tcp_connect(host, port, timeout=self.connect_timeout)
            except (OSError, TimeoutError) as exc:
                self.console.debug(f"controller {host}:{port}: {exc or type(exc).__name__}; "
                                   f"retrying in {delay:g}s")
            else:
                channel = _Channel(flow)
                reason = await self._serve(channel)
                self.console.info(f"controller {host}:{port} disconnected: {reason}")
                if channel.negotiated:
                    delay = self.reconnect_min
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.reconnect_max)

    async def _serve(self, channel: _Channel) -> str:
        """One connection until it ends; the reason, for the log."""
        flow = channel.flow
        channel.flush()  # our HELLO
        writer = asyncio.get_running_loop().create_task(channel.writer())
        reading: asyncio.Future[bytes] | None = None
        alive = Liveness(self.probe_interval, self.clock.monotonic())
        try:
            while True:
                if reading is None:
                    reading = asyncio.ensure_future(flow.read())
                deadline = alive.next_deadline()
                timeout = None if deadline is None else max(
                    0.0, deadline - self.clock.monotonic())
                done, _ = await asyncio.wait({reading, writer}, timeout=timeout,
                                             return_when=asyncio.FIRST_COMPLETED)
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
            if self.channel is channel:
                self.channel = None
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
                self.channel = channel
                channel.negotiated = True
                self.connections += 1
                host, port = self.controller
                self.console.info(f"controller {host}:{port} connected (OpenFlow "
                                  f"0x{event.version:02x})")
            elif isinstance(event, Received):
                self._emit(self.switch.handle(event.message, self.clock.monotonic()))
            elif isinstance(event, Rejected):
                self.console.debug(f"refused from the controller: {event.malformed.reason}")
            elif isinstance(event, Closed):
                if self.channel is channel:  # nothing more may be queued on it
                    self.channel = None
                return event.reason
        return None


async def start(*, stack: Stack, clock: Clock, console: Console, lifecycle: Lifecycle,
                args: argparse.Namespace, **devices: Netif) -> None:
    """Switch between the ports (the devices ``port1`` .. ``portN``: OpenFlow ports 1 ..
    N) until stopped, keeping a controller channel up."""
    ports = {int(name.removeprefix("port")): netif for name, netif in devices.items()
             if name.startswith("port") and name[4:].isdigit()}
    ports = dict(sorted(ports.items()))
    app = SwitchAppliance(ports, stack, clock, console, args)
    app.start_ports()
    host, port = app.controller
    console.info(f"switch up: datapath 0x{app.switch.datapath_id:016x}, ports "
                 + ", ".join(f"{no}={n.name}" for no, n in ports.items())
                 + f", fail mode {args.fail_mode}, controller {host}:{port}")
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
                     f"messages with no controller, {app.local_dropped} frames to LOCAL "
                     f"dropped")
