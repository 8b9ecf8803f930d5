"""TCP behaviour between two Fata stacks joined by an in-memory wire (both ends real code).

The wire can drop frames, which drives retransmission, SACK recovery, NewReno, zero-window
probing and keepalive; segments can also be injected to check RFC 5961 and PAWS handling.

Every test runs on a virtual clock (``VirtualClockLoop``): frames cross the wire in zero
time and each timer fires at exactly the instant it was armed for, so timer behaviour (RTO
backoff, persist backoff, keepalive, TIME-WAIT's 2 MSL) is checked against the instants
the RFCs give, and no outcome depends on how fast the machine is.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import itertools
import random
import tracemalloc
from collections.abc import Callable

import pytest
from fata.net import ethernet, ipv4, tcp_wire
from fata.net.errors import ParseError
from fata.net.ipv4 import Ipv4Config
from fata.net.stack import DirectStack
from fata.net.tcp import State, TcpConfig
from fata.net.tcp import output as tcp_output
from fata.net.tcp_wire import ACK, FIN, RST, SYN, Segment
from fata.platform.memory import MemoryWire

from ._services import echo, run_until, run_virtual, settle, sink, until

A = "10.0.0.1"
B = "10.0.0.2"
ARP = b"\x08\x06"  # the ARP ethertype


def only_arp(frame: bytes) -> bool:
    """A wire filter that lets ARP through and drops everything else."""
    return frame[12:14] == ARP


def tcp_segment(frame: bytes) -> Segment | None:
    """The TCP segment a frame carries (None for ARP and the like)."""
    try:
        if ethernet.parse(frame)[2] != ethernet.ETHERTYPE_IPV4:
            return None
        hdr, payload = ipv4.parse(frame[ethernet.HEADER_LEN:])
        return tcp_wire.parse(payload, None) if hdr.proto == 6 else None
    except ParseError:
        return None


class Recorder:
    """A wire filter that notes (virtual time, segment) for every TCP segment sent, then
    passes the frame on to ``inner`` (everything passes without one)."""

    def __init__(self, loop: asyncio.AbstractEventLoop,
                 inner: Callable[[bytes], bool] | None = None) -> None:
        self.loop = loop
        self.inner = inner
        self.sent: list[tuple[float, Segment]] = []

    def __call__(self, frame: bytes) -> bool:
        seg = tcp_segment(frame)
        if seg is not None:
            self.sent.append((self.loop.time(), seg))
        return self.inner is None or self.inner(frame)

    def times(self, match: Callable[[Segment], bool]) -> list[float]:
        return [t for t, seg in self.sent if match(seg)]


def pair(config_a: TcpConfig | None = None,
         config_b: TcpConfig | None = None) -> tuple[MemoryWire, DirectStack, DirectStack]:
    wire = MemoryWire()
    a = DirectStack(wire.a, Ipv4Config.from_text(f"{A}/24"), tcp_config=config_a)
    b = DirectStack(wire.b, Ipv4Config.from_text(f"{B}/24"), tcp_config=config_b)
    a.start()
    b.start()
    return wire, a, b


def lossy(rate: float, seed: int) -> Callable[[bytes], bool]:
    rng = random.Random(seed)
    return lambda frame: frame[12:14] == ARP or rng.random() >= rate


async def transfer(a: DirectStack, b: DirectStack, size: int) -> None:
    data = random.Random(size).randbytes(size)
    await b.tcp_listen("0.0.0.0", 9000, sink)
    flow = await a.tcp_connect(B, 9000, timeout=20)
    await flow.write(data)
    await flow.shutdown()
    reply = b""
    while True:
        chunk = await asyncio.wait_for(flow.read(), 60)
        if not chunk:
            break
        reply += chunk
    n, digest = reply.split()
    assert int(n) == size and digest.decode() == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("options", ["all", "no-sack", "none"])
@pytest.mark.parametrize("seed", [1, 2])
def test_transfer_over_lossy_wire(options: str, seed: int) -> None:
    def config() -> TcpConfig:
        cfg = TcpConfig(rto_min=0.05)
        if options != "all":
            cfg.sack = False
        if options == "none":
            cfg.timestamps = cfg.window_scaling = False
        return cfg

    async def main() -> None:
        wire, a, b = pair(config(), config())
        wire.a.filter = lossy(0.05, seed)
        wire.b.filter = lossy(0.05, seed + 100)
        await transfer(a, b, 300_001)
        stats = a.stats()
        assert stats["tcp_retransmits"] > 0
        assert stats.get("internal_errors", 0) == 0 and b.stats().get("internal_errors", 0) == 0
        await a.close()
        await b.close()
    run_virtual(main())


def test_negotiated_options() -> None:
    async def main() -> None:
        _, a, b = pair(TcpConfig(rcv_buffer=1 << 20), TcpConfig(sack=False))
        await b.tcp_listen("0.0.0.0", 7, echo)
        flow = await a.tcp_connect(B, 7)
        conn = flow.connection  # type: ignore[attr-defined]
        assert conn.ts_ok and conn.ws_ok and not conn.sack_ok
        assert conn.rcv_wscale == 5 and conn.snd_mss == 1460 - 12
        await flow.write(b"ping")
        assert await flow.read() == b"ping"
        await a.close()
        await b.close()
    run_virtual(main())


def test_connection_refused_by_rst() -> None:
    async def main() -> None:
        _, a, b = pair()
        with pytest.raises(ConnectionRefusedError):
            await a.tcp_connect(B, 4444, timeout=5)
        assert b.stats()["tcp_resets_sent"] == 1
    run_virtual(main())


def test_connect_timeout_when_nothing_answers() -> None:
    """The SYN is resent after RTO 0.05 s, then after twice that (RFC 6298 (5.5) backoff),
    until the caller's timeout ends the attempt and forgets the connection."""
    async def main() -> None:
        wire, a, _ = pair(TcpConfig(rto_initial=0.05))
        wire.a.filter = sent = Recorder(a.loop, only_arp)
        start = a.loop.time()
        with pytest.raises(TimeoutError):
            await a.tcp_connect(B, 80, timeout=0.3)
        assert a.loop.time() == pytest.approx(start + 0.3)
        syns = [t - start for t in sent.times(lambda seg: seg.flags == SYN)]
        assert syns == pytest.approx([0.0, 0.05, 0.15])  # the next would be at 0.35
        assert a.stats()["tcp_timeouts"] == 2
        assert not a.tcp.conns
    run_virtual(main())


def test_simultaneous_open_and_close() -> None:
    async def main() -> None:
        wire, a, b = pair(TcpConfig(msl=0.25), TcpConfig(msl=0.25))
        now = a.loop.time()
        ca = a.tcp.connect(ipv4.addr(A), 5000, ipv4.addr(B), 6000, now)
        cb = b.tcp.connect(ipv4.addr(B), 6000, ipv4.addr(A), 5000, now)
        a.flush()
        b.flush()
        await until(lambda: ca.state == cb.state == State.ESTABLISHED, what="both established")
        ca.app_send(b"from a", a.loop.time())
        cb.app_send(b"from b", b.loop.time())
        a.flush()
        b.flush()
        await until(lambda: bytes(ca.rcvbuf) == b"from b" and bytes(cb.rcvbuf) == b"from a",
                    what="data both ways")
        wire.a.filter = fins_a = Recorder(a.loop)
        closed_at = a.loop.time()
        ca.app_close(closed_at)  # both FINs cross on the wire
        cb.app_close(closed_at)
        a.flush()
        b.flush()
        await settle()
        assert ca.state == cb.state == State.TIME_WAIT  # via CLOSING on both sides
        assert [seg.flags & (FIN | ACK) for _, seg in fins_a.sent] == [FIN | ACK, ACK]
        # TIME-WAIT lasts 2 MSL from the moment it was entered, not a moment less
        await run_until(closed_at + 2 * 0.25 - 0.001)
        assert ca.state == cb.state == State.TIME_WAIT
        await run_until(closed_at + 2 * 0.25 + 0.001)
        assert ca.state == cb.state == State.CLOSED and not a.tcp.conns and not b.tcp.conns
    run_virtual(main())


def probes_of(conn: object) -> Callable[[Segment], bool]:
    """Matches zero-window and keepalive probes: a bare ACK one byte below SND.UNA."""
    return lambda seg: (seg.flags == ACK and not seg.payload
                        and seg.seq == (conn.snd_una - 1) & 0xFFFFFFFF)  # type: ignore[attr-defined]


def test_zero_window_then_reopen() -> None:
    """A receiver that does not read closes its window; the sender probes it with the
    persist timer, doubling the interval each time (RFC 9293 §3.8.6.1), and sends the rest
    once the application reads."""
    async def main() -> None:
        wire, a, b = pair(None, TcpConfig(rcv_buffer=16384, rto_min=0.05))
        accepted: asyncio.Future = asyncio.get_running_loop().create_future()
        release = asyncio.Event()

        async def lazy(flow: object) -> None:
            accepted.set_result(flow)
            await release.wait()  # the handler holds the flow open; the test reads it

        await b.tcp_listen("0.0.0.0", 9, lazy)
        flow = await a.tcp_connect(B, 9)
        conn = flow.connection  # type: ignore[attr-defined]
        wire.a.filter = sent = Recorder(a.loop)
        server = await accepted
        data = random.Random(3).randbytes(200_000)
        writer = asyncio.create_task(flow.write(data))
        await until(lambda: len(sent.times(probes_of(conn))) >= 4, what="four window probes")
        assert conn.snd_wnd == 0
        probes = sent.times(probes_of(conn))
        gaps = [later - earlier for earlier, later in itertools.pairwise(probes)]
        assert gaps[:3] == pytest.approx([2 * conn.rto, 4 * conn.rto, 8 * conn.rto])
        assert a.stats()["tcp_window_probes"] == len(probes)
        got = bytearray()
        while len(got) < len(data):
            got += await server.read()
        await writer
        assert bytes(got) == data
        release.set()
        await a.close()
        await b.close()
    run_virtual(main())


def test_keepalive_detects_a_dead_peer() -> None:
    cfg = TcpConfig(keepalive=True, keepalive_idle=0.1, keepalive_interval=0.05,
                    keepalive_count=3)

    async def main() -> None:
        wire, a, b = pair(cfg, None)
        await b.tcp_listen("0.0.0.0", 7, echo)
        flow = await a.tcp_connect(B, 7)
        conn = flow.connection  # type: ignore[attr-defined]
        wire.a.filter = sent = Recorder(a.loop)
        probe = probes_of(conn)
        start = conn.last_recv  # the connection idles from the handshake on
        # The live peer answers every probe, which restarts the idle time: one probe per
        # ``keepalive_idle``.
        await run_until(start + 0.35)
        assert [t - start for t in sent.times(probe)] == pytest.approx([0.1, 0.2, 0.3])
        assert conn.state == State.ESTABLISHED and a.stats()["tcp_keepalive_probes"] == 3
        wire.b.filter = lambda frame: False  # the peer dies silently
        heard = conn.last_recv
        assert heard == pytest.approx(start + 0.3)
        # Unanswered: probes after the idle time, then every interval; after ``count`` of
        # them, the connection is given up with an RST.
        given_up = heard + 0.1 + 3 * 0.05
        await run_until(given_up - 0.001)
        assert conn.state == State.ESTABLISHED
        await run_until(given_up + 0.001)
        assert conn.state == State.CLOSED and isinstance(conn.error, TimeoutError)
        assert [t - heard for t in sent.times(probe)][3:] == pytest.approx([0.1, 0.15, 0.2])
        assert sent.sent[-1][0] == pytest.approx(given_up) and sent.sent[-1][1].flags == RST | ACK
        assert a.stats()["tcp_keepalive_timeouts"] == 1
        assert await flow.read() == b""
    run_virtual(main())


def inject(stack: DirectStack, src: str, dst: str, seg: Segment) -> None:
    tcp_output.transmit(stack.ip, ipv4.addr(src), ipv4.addr(dst), seg, 0, stack.loop.time())


def test_rfc5961_rst_and_syn_in_window_get_challenge_acks() -> None:
    async def main() -> None:
        _, a, b = pair()
        await b.tcp_listen("0.0.0.0", 7, echo)
        flow = await a.tcp_connect(B, 7)
        conn = flow.connection  # type: ignore[attr-defined]
        await settle()
        seq = (conn.rcv_nxt + 1000) & 0xFFFFFFFF  # in the window, not exactly RCV.NXT
        inject(b, B, A, Segment(7, conn.local_port, seq, 0, RST, 0))
        inject(b, B, A, Segment(7, conn.local_port, seq, 0, SYN, 0))
        await settle()
        assert conn.state == State.ESTABLISHED
        assert a.stats()["tcp_challenge_acks"] == 2
        inject(b, B, A, Segment(7, conn.local_port, conn.rcv_nxt & 0xFFFFFFFF, 0, RST, 0))
        await settle()
        assert conn.state == State.CLOSED
        assert isinstance(conn.error, ConnectionResetError)
    run_virtual(main())


def test_paws_drops_old_timestamps() -> None:
    async def main() -> None:
        _, a, b = pair()
        await b.tcp_listen("0.0.0.0", 7, echo)
        flow = await a.tcp_connect(B, 7)
        conn = flow.connection  # type: ignore[attr-defined]
        await settle()
        seg = Segment(7, conn.local_port, conn.rcv_nxt & 0xFFFFFFFF,
                      conn.snd_nxt & 0xFFFFFFFF, ACK, 1000, b"stale")
        seg.tsval = (conn.ts_recent - 1000) & 0xFFFFFFFF
        rcv_nxt = conn.rcv_nxt
        inject(b, B, A, seg)
        await settle()
        assert a.stats()["tcp_paws_drops"] == 1 and not conn.rcvbuf and conn.rcv_nxt == rcv_nxt
        assert conn.state == State.ESTABLISHED
    run_virtual(main())


def test_syn_flood_is_bounded_by_the_backlog() -> None:
    async def main() -> None:
        wire, a, b = pair()
        await b.tcp_listen("0.0.0.0", 80, echo, backlog=4)
        wire.b.filter = only_arp  # SYN-ACKs go nowhere
        for port in range(20000, 20050):  # SYNs that are never completed
            inject(a, A, B, Segment(port, 80, port * 7, 0, SYN, 1000))
        await settle()
        half_open = [c for c in b.tcp.conns.values() if c.state == State.SYN_RECEIVED]
        assert len(half_open) == 4
        assert b.stats()["tcp_syn_backlog_drops"] == 46
    run_virtual(main())


def test_nagle_coalesces_small_writes() -> None:
    async def main(nagle: bool) -> int:
        wire, a, b = pair()
        await b.tcp_listen("0.0.0.0", 9000, sink)
        flow = await a.tcp_connect(B, 9000)
        assert not flow.nodelay  # type: ignore[attr-defined]
        flow.nodelay = not nagle  # type: ignore[attr-defined]
        before = wire.a.sent
        for _ in range(200):
            await flow.write(b"x" * 10)
        await flow.shutdown()
        assert (await flow.read()).startswith(b"2000 ")
        return wire.a.sent - before

    with_nagle = run_virtual(main(True))
    without = run_virtual(main(False))
    assert with_nagle < 20 < without


def test_many_connections_leave_nothing_behind() -> None:
    """Connections that come and go do not grow memory (TIME_WAIT expires, buffers freed)."""
    async def main() -> None:
        _, a, b = pair(TcpConfig(msl=0.02), TcpConfig(msl=0.02))
        await b.tcp_listen("0.0.0.0", 7, echo)
        payload = bytes(20_000)

        async def one() -> None:
            flow = await a.tcp_connect(B, 7)
            await flow.write(payload)
            got = 0
            while got < len(payload):
                got += len(await flow.read())
            await flow.shutdown()
            while await flow.read():
                pass

        def all_gone() -> bool:  # TIME-WAIT (2 MSL = 0.04 s) over everywhere
            return not a.tcp.conns and not b.tcp.conns

        for _ in range(20):  # warm up caches and free lists
            await one()
        await until(all_gone, what="every connection forgotten")
        gc.collect()
        tracemalloc.start()
        start = tracemalloc.take_snapshot()
        for _ in range(100):
            await one()
        await until(all_gone, what="every connection forgotten")
        gc.collect()
        end = tracemalloc.take_snapshot()
        tracemalloc.stop()
        diffs = end.compare_to(start, "lineno")
        growth = sum(s.size_diff for s in diffs)
        assert not a.tcp.conns and not b.tcp.conns
        assert growth < 100_000, "\n".join(str(d) for d in diffs[:8])
    run_virtual(main())


def test_udp_between_stacks_software_checksums() -> None:
    """The datagram fast path builds correct checksums when the device does not offload."""
    async def main() -> None:
        _, a, b = pair()
        await b.udp_listen("0.0.0.0", 7, lambda data, peer: data[::-1])
        got: list[bytes] = []
        ep = await a.udp_listen(A, 0, lambda data, peer: got.append(data))
        for n, size in enumerate((0, 1, 99, 1400, 3000), 1):
            ep.sendto(bytes(range(256)) * (size // 256) + b"x" * (size % 256), (B, 7))
            await until(lambda n=n: len(got) == n, what=f"reply {n}")
        assert [len(g) for g in got] == [0, 1, 99, 1400, 3000]
        assert got[2] == (b"x" * 99)[::-1]
        for stack in (a, b):
            assert not any("checksum" in k for k in stack.stats()), stack.stats()
    run_virtual(main())


def test_long_running_connection_does_not_grow() -> None:
    """Thousands of exchanges on one lossy connection: memory stays flat."""
    async def main() -> None:
        wire, a, b = pair(TcpConfig(rto_min=0.05), TcpConfig(rto_min=0.05))
        wire.a.filter = lossy(0.02, 7)
        await b.tcp_listen("0.0.0.0", 7, echo)
        flow = await a.tcp_connect(B, 7)
        block = bytes(range(256)) * 40

        async def rounds(n: int) -> None:
            for _ in range(n):
                await flow.write(block)
                got = 0
                while got < len(block):
                    got += len(await asyncio.wait_for(flow.read(), 10))

        await rounds(100)
        gc.collect()
        tracemalloc.start()
        start = tracemalloc.take_snapshot()
        await rounds(300)
        gc.collect()
        end = tracemalloc.take_snapshot()
        tracemalloc.stop()
        diffs = end.compare_to(start, "lineno")
        growth = sum(s.size_diff for s in diffs)
        assert growth < 64_000, "\n".join(str(d) for d in diffs[:8])
        conn = flow.connection  # type: ignore[attr-defined]
        assert not conn.ooo and not conn.sndbuf and not conn.sacked
        assert a.stats()["tcp_retransmits"] > 0
    run_virtual(main())


def test_partial_sack_holes_and_reneging_peer() -> None:
    """A SACK block starting mid-segment leaves a sub-MSS hole that must still be resent
    after a timeout, and SACKed data the peer does not really hold (reneging) must be resent
    too: the transfer completes either way."""
    async def main() -> None:
        wire, a, b = pair(TcpConfig(rto_min=0.05, rto_initial=0.1), None)
        await b.tcp_listen("0.0.0.0", 9000, sink)
        flow = await a.tcp_connect(B, 9000)
        conn = flow.connection  # type: ignore[attr-defined]
        await settle()
        wire.a.filter = only_arp  # A's data goes nowhere
        data = random.Random(9).randbytes(10000)
        await flow.write(data)
        una = conn.snd_una
        lie = Segment(9000, conn.local_port, conn.rcv_nxt & 0xFFFFFFFF, una & 0xFFFFFFFF, ACK,
                      1000)
        lie.tsval = conn.ts_recent + 1
        lie.sack = [((una + 2000) & 0xFFFFFFFF, (una + 3000) & 0xFFFFFFFF)]
        inject(b, B, A, lie)  # "I hold bytes 2000..3000" (B does not)
        await settle()
        assert conn.sacked_bytes == 1000
        wire.a.filter = None
        await flow.shutdown()
        reply = await asyncio.wait_for(flow.read(), 10)
        assert reply.split()[0] == b"10000"
        assert reply.split()[1].decode() == hashlib.sha256(data).hexdigest()
        assert a.stats()["tcp_sack_reneging_resets"] >= 1
    run_virtual(main())
