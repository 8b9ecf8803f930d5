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

import pytest
from fata.net import tcp_wire
from fata.net.tcp import Connection, State, TcpConfig, TcpEngine

IP_A = bytes([10, 0, 0, 1])
IP_B = bytes([10, 0, 0, 2])


class Sim:
    """Event-driven link between two engines: per-direction loss, delay, jitter."""

    def __init__(self, seed: int, loss: float, delay: float, jitter: float,
                 duplicate: float = 0.0) -> None:
        self.rng = random.Random(seed)
        self.loss = loss
        self.duplicate = duplicate
        self.delay = delay
        self.jitter = jitter
        self.now = 0.0
        cfg = TcpConfig(rcv_buffer=64 * 1024, snd_buffer=64 * 1024)
        self.a = TcpEngine(cfg, self.rng.randbytes)
        self.b = TcpEngine(TcpConfig(rcv_buffer=64 * 1024, snd_buffer=64 * 1024),
                           self.rng.randbytes)
        self.events: list[tuple[float, int, TcpEngine, bytes, bytes, bytes]] = []
        self.ids = itertools.count()

    def ship(self) -> None:
        """Put what both engines queued on the link (some of it is lost)."""
        for src, dst in ((self.a, self.b), (self.b, self.a)):
            out, src.outbox = src.outbox, []
            for sip, dip, seg, _mss in out:
                if self.rng.random() < self.loss:
                    continue
                wire = tcp_wire.header(seg, None) + bytes(seg.payload)
                for _ in range(2 if self.rng.random() < self.duplicate else 1):
                    at = self.now + self.delay + self.rng.random() * self.jitter
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
        self.a.poll(self.now)
        self.b.poll(self.now)
        return True


def request_reply(seed: int, size: int, loss: float, delay: float, jitter: float,
                  duplicate: float = 0.0, limit: float = 120.0) -> None:
    """A sends ``size`` bytes and shuts down; B answers with a digest and closes."""
    sim = Sim(seed, loss, delay, jitter, duplicate)
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
def test_request_reply_completes_with_heavy_loss_and_reordering(seed: int) -> None:
    request_reply(1000 + seed, 50_000, loss=0.25, delay=0.02, jitter=0.03, duplicate=0.05,
                  limit=600.0)
