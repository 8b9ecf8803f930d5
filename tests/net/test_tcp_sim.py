"""Two TCP engines on a simulated lossy, delaying link with a simulated clock (pure sans-IO).

The driver honours exactly the contract the adapter (``DirectStack``) relies on: it sends
what lands in ``outbox``, and it wakes an engine only at ``TcpEngine.next_deadline()``.  An
engine that arms a timer without putting it where ``next_deadline`` sees it therefore
stalls here as it would on a real link, where a lost segment with no timer behind it hangs
the connection until the peer's application gives up.  Many seeded runs of the request /
reply pattern of the namespace bulk test (send, shut down, read the reply, close) must all
finish within a bounded simulated time.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import random
from collections.abc import Callable

import pytest
from fata.net import tcp_wire
from fata.net.tcp import Connection, State, TcpConfig, TcpEngine

IP_A = bytes([10, 0, 0, 1])
IP_B = bytes([10, 0, 0, 2])


class Sim:
    """Event-driven link between two engines: per-direction loss, delay, jitter."""

    def __init__(self, seed: int, loss: float, delay: float, jitter: float,
                 duplicate: float = 0.0, reorder: float = 0.0, buffer: int = 64 * 1024,
                 congestion: str = "newreno") -> None:
        self.rng = random.Random(seed)
        self.loss = loss
        self.duplicate = duplicate
        self.reorder = reorder  # netem's: this fraction skips the delay and overtakes
        self.delay = delay
        self.jitter = jitter
        self.now = 0.0
        self.a = TcpEngine(TcpConfig(rcv_buffer=buffer, snd_buffer=buffer, congestion=congestion),
                           self.rng.randbytes)
        self.b = TcpEngine(TcpConfig(rcv_buffer=buffer, snd_buffer=buffer, congestion=congestion),
                           self.rng.randbytes)
        self.events: list[tuple[float, int, TcpEngine, bytes, bytes, bytes]] = []
        self.ids = itertools.count()
        # a deterministic loss on top of the random one: ``drop(segment)`` for A -> B
        self.drop: Callable[[tcp_wire.Segment], bool] = lambda seg: False

    def ship(self) -> None:
        """Put what both engines queued on the link (some of it is lost)."""
        for src, dst in ((self.a, self.b), (self.b, self.a)):
            out, src.outbox = src.outbox, []
            for sip, dip, seg, _mss in out:
                if self.rng.random() < self.loss or (src is self.a and self.drop(seg)):
                    continue
                wire = tcp_wire.header(seg, None) + bytes(seg.payload)
                held = self.rng.random() >= self.reorder
                for _ in range(2 if self.rng.random() < self.duplicate else 1):
                    at = self.now + (self.delay + self.rng.random() * self.jitter if held else 0)
                    heapq.heappush(self.events, (at, next(self.ids), dst, sip, dip, wire))

    def step(self) -> bool:
        """Advance to the next packet arrival or engine deadline; False when nothing is left."""
        candidates = [t for t in (self.a.next_deadline(), self.b.next_deadline()) if t is not None]
        if self.events:
            candidates.append(self.events[0][0])
        if not candidates:
            return False
        self.now = max(self.now, min(candidates))
        while self.events and self.events[0][0] <= self.now:
            _, _, dst, sip, dip, wire = heapq.heappop(self.events)
            dst.input(sip, dip, tcp_wire.parse(memoryview(wire), None), self.now)
        self.a.on_timer(self.now)
        self.b.on_timer(self.now)
        return True


def request_reply(seed: int, size: int, loss: float, delay: float, jitter: float,
                  duplicate: float = 0.0, limit: float = 120.0, reorder: float = 0.0,
                  buffer: int = 64 * 1024, congestion: str = "newreno") -> Sim:
    """A sends ``size`` bytes and shuts down; B answers with a digest and closes."""
    sim = Sim(seed, loss, delay, jitter, duplicate, reorder, buffer, congestion)
    data = random.Random(seed).randbytes(size)
    sim.b.listen(b"\0\0\0\0", 9000, 8)
    client = sim.a.connect(IP_A, 40000 + seed % 20000, IP_B, 9000, sim.now)
    server: Connection | None = None
    sent = received = 0
    digest = hashlib.sha256()
    reply = b""
    replied = client_closed = False
    while sim.now < limit:
        # the applications, called after every event as the adapter's wake-ups would
        if client.state not in (State.SYN_SENT, State.CLOSED) and not client_closed:
            if sent < size:
                sent += client.app_send(memoryview(data)[sent:sent + 65536], sim.now)
            if sent == size:
                client.app_close(sim.now)
                client_closed = True
        reply += client.app_read(1 << 20, sim.now)
        if sim.b.accepted:
            server = sim.b.accepted.pop()
            sim.b.accepted_by_app(server)
        if server is not None:
            chunk = server.app_read(1 << 20, sim.now)
            digest.update(chunk)
            received += len(chunk)
            if server.peer_fin and not server.rcvbuf and not replied:
                server.app_send(f"{received} {digest.hexdigest()}\n".encode(), sim.now)
                server.app_close(sim.now)
                replied = True
        if client.peer_fin and not client.rcvbuf:
            break
        sim.ship()
        if not sim.step():
            break
    state = (f"seed {seed}: t={sim.now:.1f} client {client.state.name} "
             f"server {server.state.name if server else None} sent {sent} received {received}")
    assert client.peer_fin, f"stalled: {state}"
    assert reply == f"{size} {hashlib.sha256(data).hexdigest()}\n".encode(), state
    return sim


def test_idle_connection_arms_its_timers_for_app_send_and_app_close() -> None:
    """Data or a FIN written on an idle connection must be backed by a timer the adapter sees."""
    sim = Sim(1, 0.0, 0.01, 0.0)
    sim.b.listen(b"\0\0\0\0", 9000, 8)
    client = sim.a.connect(IP_A, 40000, IP_B, 9000, 0.0)

    def settle() -> None:
        while sim.a.next_deadline() is not None or sim.b.next_deadline() is not None \
                or sim.events:
            sim.ship()
            assert sim.step()

    settle()
    assert client.state == State.ESTABLISHED and sim.a.next_deadline() is None
    client.app_send(b"hello", sim.now)
    sim.a.outbox.clear()  # the segment is lost
    deadline = sim.a.next_deadline()
    assert deadline is not None and deadline <= sim.now + client.rto
    settle()  # the retransmission gets through
    server = sim.b.accepted.pop()
    assert server.app_read(100, sim.now) == b"hello" and client.snd_una == client.snd_max
    assert sim.a.next_deadline() is None
    client.app_close(sim.now)
    sim.a.outbox.clear()  # the FIN is lost
    deadline = sim.a.next_deadline()
    assert deadline is not None and deadline <= sim.now + client.rto
    settle()
    assert client.state == State.FIN_WAIT_2 and server.peer_fin


@pytest.mark.parametrize("seed", range(100))
def test_request_reply_completes_over_lossy_link(seed: int) -> None:
    request_reply(seed, 20_000, loss=0.10, delay=0.005, jitter=0.002)


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("congestion", ["newreno", "cubic"])
def test_request_reply_completes_with_heavy_loss_and_reordering(seed: int,
                                                                  congestion: str) -> None:
    request_reply(1000 + seed, 50_000, loss=0.25, delay=0.02, jitter=0.03, duplicate=0.05,
                  limit=600.0, congestion=congestion)


@pytest.mark.parametrize("seed", range(30))
def test_request_reply_completes_over_lossy_link_with_cubic(seed: int) -> None:
    request_reply(seed, 20_000, loss=0.10, delay=0.005, jitter=0.002, congestion="cubic")


@pytest.mark.parametrize("congestion", ["newreno", "cubic"])
def test_lossy_bulk_recovers_by_sack_not_by_timeouts(congestion: str) -> None:
    """A megabyte at 10% loss each way (data and ACKs) and a 50 ms RTT: SACK recovery, its
    probes and re-retransmission of lost retransmissions repair the losses; go-back-N
    timeouts stay rare.  (Before the head's retransmission restarted the RTO, and before
    a SACKed-but-stuck head was declared lost by the reordering timer, this took ~9 RTOs
    per megabyte.)  Loss recovery is the connection's, whichever controller sizes cwnd."""
    timeouts = []
    for seed in range(4):
        sim = request_reply(seed, 1 << 20, loss=0.10, delay=0.025, jitter=0.0, limit=600,
                            buffer=1 << 20, congestion=congestion)
        timeouts.append(sim.a.counters.get("timeouts", 0))
        assert sim.a.counters.get("fast_retransmits", 0) > 20
    assert sum(timeouts) <= 20, timeouts


def one_way(sim: Sim, client: Connection, data: bytes, until: float,
            each_step: Callable[[Sim], None] | None = None) -> bytes:
    """A sends ``data`` to B's listener until B has it all or the clock reaches ``until``;
    returns what B's application read.  ``each_step`` may change the link as time goes."""
    sent = 0
    got = bytearray()
    server: Connection | None = None
    while sim.now < until and len(got) < len(data):
        if each_step is not None:
            each_step(sim)
        if client.state == State.ESTABLISHED and sent < len(data):
            sent += client.app_send(memoryview(data)[sent:sent + 65536], sim.now)
        if sim.b.accepted:
            server = sim.b.accepted.pop()
            sim.b.accepted_by_app(server)
        if server is not None:
            got += server.app_read(1 << 20, sim.now)
        sim.ship()
        if not sim.step():
            break
    return bytes(got)


def _lost_twice(offset_from_end: int) -> dict[str, int]:
    """Send 400 kB A -> B over a clean 50 ms RTT link, losing the data segment that starts
    ``offset_from_end`` bytes before the end twice (the original and its first
    retransmission); return A's counters."""
    sim = Sim(7, 0.0, 0.025, 0.0, buffer=1 << 20)
    data = random.Random(7).randbytes(400_000)
    sim.b.listen(b"\0\0\0\0", 9000, 8)
    client = sim.a.connect(IP_A, 40000, IP_B, 9000, sim.now)
    drops = 0

    def drop(seg: tcp_wire.Segment) -> bool:
        nonlocal drops
        rel = (seg.seq - client.iss - 1) & 0xFFFFFFFF
        if seg.payload and rel <= len(data) - offset_from_end < rel + len(seg.payload) \
                and drops < 2:
            drops += 1
            return True
        return False

    sim.drop = drop
    got = one_way(sim, client, data, until=30)
    assert drops == 2
    assert got == data
    return sim.a.counters


@pytest.mark.parametrize("offset_from_end", [100_000, 20_000, 2_000, 700])
def test_lost_retransmission_is_repaired_without_timeout(offset_from_end: int) -> None:
    """A segment lost twice, in mid-stream or near the tail where few ACKs still come:
    time-based detection (RACK-style, RFC 8985) resends it a third time, with no RTO, and
    the RTO restarted by the head's retransmission does not preempt that repair."""
    counters = _lost_twice(offset_from_end)
    assert counters.get("fast_retransmits", 0) >= 1, counters
    assert counters.get("timeouts", 0) == 0, counters


def test_duplicate_segments_are_reported_with_dsack() -> None:
    """RFC 2883: a duplicate of delivered data, and of data held out of order, is answered
    at once with a D-SACK block first (below the cumulative ACK, or inside a SACK block);
    Linux's sender uses these to undo spurious recoveries and widen its reordering window."""
    sim = Sim(3, 0.0, 0.01, 0.0)
    sim.b.listen(b"\0\0\0\0", 9000, 8)
    client = sim.a.connect(IP_A, 40000, IP_B, 9000, sim.now)
    while client.state != State.ESTABLISHED or not sim.b.accepted:
        sim.ship()
        assert sim.step()
    server = sim.b.accepted.pop()
    assert server.sack_ok
    client.app_send(b"x" * 3000, sim.now)
    segs = [seg for _, _, seg, _ in sim.a.outbox if seg.payload]
    assert len(segs) >= 2
    first, second = segs[0], segs[1]

    def deliver(seg: tcp_wire.Segment) -> tcp_wire.Segment:
        wire = tcp_wire.header(seg, None) + bytes(seg.payload)
        sim.b.outbox.clear()
        sim.b.input(IP_A, IP_B, tcp_wire.parse(memoryview(wire), None), sim.now)
        acks = [s for _, _, s, _ in sim.b.outbox]
        assert acks, "a duplicate must be acknowledged at once"
        return acks[-1]

    ack = deliver(second)  # out of order: an ordinary SACK block
    assert ack.sack and ack.sack[0] == (second.seq, (second.seq + len(second.payload)) & 0xFFFFFFFF)
    ack = deliver(second)  # again: D-SACK inside the SACKed block, then that block
    assert ack.sack is not None and len(ack.sack) == 2 and ack.sack[0] == ack.sack[1]
    deliver(first)  # fills the hole
    ack = deliver(first)  # a duplicate of delivered data: D-SACK below the cumulative ACK
    assert ack.sack is not None
    left, right = ack.sack[0]
    assert left == first.seq and right == (first.seq + len(first.payload)) & 0xFFFFFFFF
    assert ((ack.ack - right) & 0xFFFFFFFF) < 1 << 31  # right edge <= ACK: a D-SACK
    sim.ship()  # the rest (and the copies still in A's outbox: more duplicates)
    while sim.step():
        sim.ship()
    assert server.app_read(10000, sim.now) == b"x" * 3000
    assert server.dsack is None  # each D-SACK is reported once, then forgotten


def test_rtt_estimate_follows_the_path_under_heavy_loss() -> None:
    """At 20% loss nearly every flight holds a retransmission, so Karn's rule leaves almost
    no timed segment; when the path's RTT then grows from 20 ms to 300 ms, RTT samples from
    timestamp echoes (RFC 7323 §4) must still carry SRTT there.  Without them SRTT stays
    near 20 ms, the RTO (200 ms floor) fires before any ACK can come, again and again."""
    for seed in range(3):
        sim = Sim(seed, 0.2, 0.01, 0.0, buffer=1 << 20)
        sim.b.listen(b"\0\0\0\0", 9000, 8)
        client = sim.a.connect(IP_A, 40000, IP_B, 9000, 0.0)

        def slower_path(sim: Sim) -> None:
            if sim.now > 2:
                sim.delay = 0.15

        one_way(sim, client, bytes(1 << 22), until=12, each_step=slower_path)
        assert client.srtt is not None and client.srtt > 0.2, (seed, client.srtt)
        assert sim.a.counters.get("timeouts", 0) <= 10, sim.a.counters
