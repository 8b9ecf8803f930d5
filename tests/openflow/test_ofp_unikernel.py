"""The appliance's adapter (``unikernel.py``) in one process: fake ports and a fake stack
whose connection's far end is the codec's own channel engine playing the controller.

It checks the wiring the end-to-end tests cannot see in detail: fail-standalone learning
until a controller is connected, the HELLO exchange and replies over the channel, a
PACKET_IN reaching the controller, a flow's hard timeout expiring through the adapter's
timer (FLOW_REMOVED sent), and reconnection after a refused attempt and after a loss.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence

import pytest
from fata.devices import Netif
from fata_openflow_switch import actions as A
from fata_openflow_switch import instructions as I
from fata_openflow_switch import messages as M
from fata_openflow_switch.connection import Connection, Negotiated, Received
from fata_openflow_switch.ofp_const import FlowModFlags, PortNo, PortState
from fata_openflow_switch.unikernel import SwitchAppliance, parse_controller, parse_datapath_id

from ._frames import mac

BROADCAST = b"\xff" * 6


def frame(dst: bytes, src: bytes) -> bytes:
    return dst + src + b"\x08\x00" + bytes(46)


class FakeNetif(Netif):
    def __init__(self, name: str, n: int) -> None:
        self.name = name
        self.mac = mac(0x0200_0000_0000 + n)
        self.mtu = 1500
        self.sent: list[bytes] = []
        self.batch = None
        self.up = True

    @property
    def link_up(self) -> bool:
        return self.up

    def start(self, receiver, batch_receiver=None, *, wire: bool = False) -> None:
        assert wire, "a switch needs frames as a wire carries them"
        self.batch = batch_receiver

    def send(self, frame, *, csum_start: int = 0, csum_offset: int = 0,
             gso_size: int = 0) -> None:
        self.sent.append(b"".join(frame) if isinstance(frame, list) else frame)

    def close(self) -> None:
        pass

    def receive(self, frames: Sequence[bytes]) -> None:
        assert self.batch is not None
        self.batch(frames, b"\1" * len(frames))


class Pipe:
    """One end of an in-memory byte stream with the ``Flow`` methods the adapter uses."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue()
        self.peer: Pipe

    async def read(self, max_bytes: int = 65536) -> bytes:
        return await self.inbox.get()

    async def write(self, data: bytes) -> None:
        self.peer.inbox.put_nowait(data)

    async def close(self) -> None:
        self.peer.inbox.put_nowait(b"")

    def abort(self) -> None:
        self.peer.inbox.put_nowait(b"")


class FakeStack:
    """``tcp_connect`` refuses while ``accepting`` is clear, else hands out a pipe whose
    other end goes to ``controllers``."""

    def __init__(self) -> None:
        self.accepting = asyncio.Event()
        self.attempts = 0
        self.retried = asyncio.Event()  # a second attempt came after a refusal
        self.controllers: asyncio.Queue[Pipe] = asyncio.Queue()

    async def tcp_connect(self, addr: str, port: int, *, timeout: float | None = None) -> Pipe:
        self.attempts += 1
        if self.attempts >= 2:
            self.retried.set()
        assert (addr, port) == ("192.0.2.1", 6633)
        if not self.accepting.is_set():
            raise ConnectionRefusedError(111, "Connection refused")
        ours, theirs = Pipe(), Pipe()
        ours.peer, theirs.peer = theirs, ours
        self.controllers.put_nowait(theirs)
        return ours


class Console:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def debug(self, message: str) -> None:
        self.lines.append(message)

    info = warning = error = debug


class Clock:
    def monotonic(self) -> float:
        return time.monotonic()


class Controller:
    """The far end: our channel engine, receiving into a list of messages."""

    def __init__(self, pipe: Pipe) -> None:
        self.pipe = pipe
        self.conn = Connection()
        self.messages: list[M.Message] = []
        self.negotiated = False

    async def send(self, message: M.Message) -> None:
        self.conn.send(message)
        await self.flush()

    async def flush(self) -> None:
        await self.pipe.write(self.conn.data_to_send())

    async def expect(self, kind: type, timeout: float = 5.0):
        """The first message of ``kind`` not yet taken, waiting at most ``timeout``."""
        async with asyncio.timeout(timeout):
            while True:
                for i, msg in enumerate(self.messages):
                    if isinstance(msg, kind):
                        return self.messages.pop(i)
                data = await self.pipe.read()
                assert data, "the switch closed the channel"
                for event in self.conn.receive_data(data):
                    if isinstance(event, Negotiated):
                        self.negotiated = True
                    elif isinstance(event, Received):
                        self.messages.append(event.message)


def args(**kw) -> argparse.Namespace:
    base = dict(controller="192.0.2.1:6633", datapath_id="0x2a", fail_mode="standalone",
                mac_aging=300.0, reconnect_min=0.01, reconnect_max=0.05, connect_timeout=1.0)
    base.update(kw)
    return argparse.Namespace(**base)


def test_parse_controller_and_datapath_id() -> None:
    assert parse_controller("127.0.0.1:6653") == ("127.0.0.1", 6653)
    assert parse_controller("[::1]:6633") == ("::1", 6633)
    for bad in ("127.0.0.1", "controller:6653", "127.0.0.1:0", "127.0.0.1:x"):
        with pytest.raises(ValueError):
            parse_controller(bad)
    assert parse_datapath_id("", b"\x02\x00\x00\x00\x00\x07") == 0x020000000007
    assert parse_datapath_id("0x10", b"\0" * 6) == 16
    with pytest.raises(ValueError):
        parse_datapath_id(str(1 << 64), b"\0" * 6)


def test_standalone_then_controller_then_reconnection() -> None:
    async def main() -> None:
        ports = {n: FakeNetif(f"veth{n}", n) for n in (1, 2, 3)}
        stack, console = FakeStack(), Console()
        app = SwitchAppliance(ports, stack, Clock(), console, args())  # type: ignore[arg-type]
        app.start_ports()
        control = asyncio.get_running_loop().create_task(app.control())
        try:
            await asyncio.wait_for(stack.retried.wait(), 5)  # refused, retried after backoff
            a, b = mac(0xA), mac(0xB)
            ports[1].receive([frame(BROADCAST, a)])  # standalone: learned and flooded
            assert ports[2].sent and ports[3].sent and not ports[1].sent
            ports[2].receive([frame(a, b)])
            assert ports[1].sent[-1] == frame(a, b) and len(ports[3].sent) == 1

            stack.accepting.set()
            ctl = Controller(await asyncio.wait_for(stack.controllers.get(), 5))
            await ctl.flush()  # its HELLO
            await ctl.send(M.FeaturesRequest(xid=7))
            features = await ctl.expect(M.FeaturesReply)
            assert ctl.negotiated and (features.xid, features.datapath_id) == (7, 0x2A)
            to_controller = I.ApplyActions((A.Output(PortNo.CONTROLLER, 0xFFFF),))
            await ctl.send(M.FlowMod(priority=0, hard_timeout=1, instructions=(to_controller,),
                                     flags=FlowModFlags.SEND_FLOW_REM, xid=8))
            await ctl.send(M.BarrierRequest(xid=9))
            await ctl.expect(M.BarrierReply)

            sent = [len(p.sent) for p in ports.values()]
            ports[3].receive([frame(b, a)])  # connected: the OpenFlow pipeline decides
            packet_in = await ctl.expect(M.PacketIn)
            assert packet_in.data == frame(b, a)
            assert [len(p.sent) for p in ports.values()] == sent  # nothing forwarded
            removed = await ctl.expect(M.FlowRemoved, timeout=5.0)  # the adapter's timer
            assert removed.hard_timeout == 1

            await ctl.pipe.close()  # the controller goes away
            ctl = Controller(await asyncio.wait_for(stack.controllers.get(), 5))
            await ctl.flush()
            await ctl.send(M.EchoRequest(b"still there", xid=11))
            echo = await ctl.expect(M.EchoReply)
            assert echo.data == b"still there"
            assert app.connections == 2
        finally:
            control.cancel()
            app.stop_timer()
        assert any("disconnected: closed by the controller" in line for line in console.lines)

    asyncio.run(main())


def test_secure_mode_drops_without_a_controller() -> None:
    async def main() -> None:
        ports = {n: FakeNetif(f"veth{n}", n) for n in (1, 2)}
        app = SwitchAppliance(ports, FakeStack(), Clock(), Console(),  # type: ignore[arg-type]
                              args(fail_mode="secure"))
        app.start_ports()
        ports[1].receive([frame(BROADCAST, mac(0xA))])
        assert not ports[2].sent
        assert app.switch.ports[1].rx_packets == 1  # it went through the (empty) pipeline

    asyncio.run(main())


def test_a_controller_without_openflow_1_3_is_refused_and_retried() -> None:
    """The codec closes the channel (HELLO_FAILED in the peer's version): the adapter sends
    those last words, closes, says why, and tries again after the backoff."""
    async def main() -> None:
        ports = {n: FakeNetif(f"veth{n}", n) for n in (1, 2)}
        stack, console = FakeStack(), Console()
        stack.accepting.set()
        app = SwitchAppliance(ports, stack, Clock(), console, args())  # type: ignore[arg-type]
        control = asyncio.get_running_loop().create_task(app.control())
        try:
            pipe = await asyncio.wait_for(stack.controllers.get(), 5)
            await pipe.write(b"\x01\x00\x00\x08\x00\x00\x00\x05")  # an OpenFlow 1.0 HELLO
            received = b""
            async with asyncio.timeout(5):
                while data := await pipe.read():
                    received += data
            hello_len = int.from_bytes(received[2:4], "big")
            error = received[hello_len:]
            assert received[:2] == b"\x04\x00"  # our HELLO first
            assert error[:2] == b"\x01\x01" and error[4:8] == b"\x00\x00\x00\x05"  # v1 ERROR
            assert error[8:12] == b"\x00\x00\x00\x00"  # OFPET_HELLO_FAILED, INCOMPATIBLE
            await asyncio.wait_for(stack.controllers.get(), 5)  # it came back
            assert app.connections == 0
        finally:
            control.cancel()
        assert any("disconnected: no common version" in line for line in console.lines), \
            console.lines

    asyncio.run(main())


def test_a_silent_controller_is_probed_then_given_up_and_one_that_answers_is_kept() -> None:
    """The inactivity probe: after ``probe_interval`` of silence an ECHO_REQUEST; a
    controller that answers stays connected, one that does not is dropped after another
    interval and the switch connects again."""
    async def main() -> None:
        ports = {n: FakeNetif(f"veth{n}", n) for n in (1, 2)}
        stack, console = FakeStack(), Console()
        stack.accepting.set()
        app = SwitchAppliance(ports, stack, Clock(), console,  # type: ignore[arg-type]
                              args(probe_interval=0.1))
        control = asyncio.get_running_loop().create_task(app.control())
        try:
            ctl = Controller(await asyncio.wait_for(stack.controllers.get(), 5))
            await ctl.flush()  # its HELLO
            for _ in range(3):  # three probes answered: still the first connection
                probe = await ctl.expect(M.EchoRequest, timeout=5)
                await ctl.send(M.EchoReply(probe.data, xid=probe.xid))
            assert app.connections == 1
            await ctl.expect(M.EchoRequest, timeout=5)  # this one goes unanswered
            again = Controller(await asyncio.wait_for(stack.controllers.get(), 5))
            await again.flush()
            await again.send(M.EchoRequest(b"hi", xid=3))
            assert (await again.expect(M.EchoReply)).data == b"hi"
            assert app.connections == 2
        finally:
            control.cancel()
            app.stop_timer()
        assert any("an echo request unanswered" in line for line in console.lines)

    asyncio.run(main())


class StalledPipe(Pipe):
    """A pipe whose writes wait while ``stalled`` is set: a controller not reading."""

    def __init__(self) -> None:
        super().__init__()
        self.stalled = False
        self.moving = asyncio.Event()

    async def write(self, data: bytes) -> None:
        while self.stalled:
            self.moving.clear()
            await self.moving.wait()
        await super().write(data)


def test_a_controller_that_stops_reading_bounds_the_outbox() -> None:
    """PACKET_INs beyond ``--outbox-limit`` queued bytes are dropped and counted, requests
    are not read meanwhile, and once the controller reads again everything flows."""
    async def main() -> None:
        ports = {n: FakeNetif(f"veth{n}", n) for n in (1, 2)}
        stack, console = FakeStack(), Console()
        stack.accepting.set()
        ours = StalledPipe()
        theirs = Pipe()
        ours.peer, theirs.peer = theirs, ours

        async def connect(addr, port, *, timeout=None):
            stack.controllers.put_nowait(theirs)
            return ours

        stack.tcp_connect = connect  # type: ignore[method-assign]
        app = SwitchAppliance(ports, stack, Clock(), console,  # type: ignore[arg-type]
                              args(fail_mode="secure", outbox_limit=64 * 1024))
        app.start_ports()
        control = asyncio.get_running_loop().create_task(app.control())
        try:
            ctl = Controller(await asyncio.wait_for(stack.controllers.get(), 5))
            await ctl.flush()
            to_controller = I.ApplyActions((A.Output(PortNo.CONTROLLER, 0xFFFF),))
            await ctl.send(M.FlowMod(priority=0, instructions=(to_controller,), xid=1))
            await ctl.send(M.BarrierRequest(xid=2))
            await ctl.expect(M.BarrierReply)
            ours.stalled = True
            big = frame(mac(0xB), mac(0xA)) + bytes(900)
            for _ in range(20):
                ports[1].receive([big] * 50)  # 1,000 packet-ins of about 1 KB
                await asyncio.sleep(0)  # the writer takes its turn
            channel = app.channel
            assert channel is not None
            assert app.packet_ins_dropped > 500
            assert channel.backlog <= 64 * 1024 + 2 * len(big) + 1024
            await ctl.send(M.EchoRequest(b"are you there", xid=3))  # not read while stalled
            ours.stalled = False
            ours.moving.set()
            echo = await ctl.expect(M.EchoReply)
            assert echo.data == b"are you there"
            pins = [m for m in ctl.messages if isinstance(m, M.PacketIn)]
            delivered = len(pins)
            assert delivered + app.packet_ins_dropped == 1000
            dropped = app.packet_ins_dropped
            ports[1].receive([big])  # drained: the next one is delivered
            await ctl.expect(M.PacketIn)
            assert app.packet_ins_dropped == dropped
        finally:
            control.cancel()
            app.stop_timer()

    asyncio.run(main())


def test_a_port_whose_link_goes_down_is_reported_to_the_controller() -> None:
    async def main() -> None:
        ports = {n: FakeNetif(f"veth{n}", n) for n in (1, 2)}
        stack, console = FakeStack(), Console()
        stack.accepting.set()
        app = SwitchAppliance(ports, stack, Clock(), console,  # type: ignore[arg-type]
                              args(link_check=0.01))
        app.watch_links()
        control = asyncio.get_running_loop().create_task(app.control())
        try:
            ctl = Controller(await asyncio.wait_for(stack.controllers.get(), 5))
            await ctl.flush()
            await ctl.send(M.BarrierRequest(xid=1))
            await ctl.expect(M.BarrierReply)  # connected
            ports[2].up = False
            down = await ctl.expect(M.PortStatus)
            assert down.desc.port_no == 2 and down.desc.state & PortState.LINK_DOWN
            ports[2].up = True
            up = await ctl.expect(M.PortStatus)
            assert up.desc.port_no == 2 and not up.desc.state & PortState.LINK_DOWN
        finally:
            control.cancel()
            app.stop_timer()
        assert "port 2 (veth2): link down" in console.lines
        assert "port 2 (veth2): link up" in console.lines

    asyncio.run(main())
