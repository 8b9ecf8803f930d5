"""TCP under attack (issue 12): deadlines per connection and the connection table.

Sans-IO first: :class:`TcpSession` deadlines on a virtual clock (bytes fed with ``now``
values, exact expiries), :class:`ConnectionTable` admission, per-client keys and eviction.
Then the running appliance with small limits, on both stacks (host sockets on loopback;
Fata's own TCP/IP on a TAP in a network namespace made here, the test's client addresses
added to the host side): clients that trickle their
query a byte at a time neither keep their slots past the initial timeout nor lock
well-behaved clients out, and the counters show up in the stop line."""

from __future__ import annotations

import contextlib
import re
import select
import socket
import struct
import time

import dns.message
import pytest
from dnstest_util import (
    APPLIANCE_STACKS,
    RunningAppliance,
    appliance_on,
    make_server,
    query,
    wait_until,
)
from fata_dns.tcp import ConnectionTable, TcpSession, TcpState, client_key


def framed(name: str) -> bytes:
    wire = dns.message.make_query(name, "A").to_wire()
    return struct.pack("!H", len(wire)) + wire


# -- TcpSession deadlines, sans-IO -------------------------------------------------------


def session(now: float = 100.0) -> TcpSession:
    return TcpSession(("192.0.2.1", 4000), now, idle_timeout=10.0, initial_timeout=5.0,
                      message_timeout=2.0)


def test_silent_connection_expires_at_the_initial_timeout() -> None:
    s = session()
    assert s.state is TcpState.INITIAL and s.next_deadline() == 105.0
    assert not s.expired(104.999) and s.expired(105.0)


def test_trickled_first_message_does_not_extend_its_deadlines() -> None:
    srv = make_server()
    s = session()
    data = framed("www.example.org")
    s.receive(data[:1], 100.5, srv)  # the message deadline 102.5 comes before the initial 105
    assert s.next_deadline() == 102.5
    for i, byte in enumerate(data[1:6]):
        assert s.receive(bytes([byte]), 101.0 + 0.25 * i, srv) == []
        assert s.next_deadline() == 102.5
    assert s.expired(102.5) and s.state is TcpState.INITIAL


def test_initial_timeout_caps_the_first_message_even_with_a_longer_message_timeout() -> None:
    srv = make_server()
    s = TcpSession(("192.0.2.1", 4000), 0.0, idle_timeout=10.0, initial_timeout=1.0,
                   message_timeout=3.0)
    data = framed("www.example.org")
    for i in range(5):  # one byte every 0.2 s: never idle, never a whole message
        s.receive(data[i : i + 1], 0.2 * i, srv)
        assert s.next_deadline() == 1.0
    assert not s.expired(0.99) and s.expired(1.0)


def test_after_the_first_message_idle_then_message_deadlines() -> None:
    srv = make_server()
    s = session()
    (reply,) = s.receive(framed("www.example.org"), 101.0, srv)
    assert dns.message.from_wire(reply[2:]).answer
    assert s.state is TcpState.IDLE and s.next_deadline() == 111.0  # idle: 101 + 10
    nxt = framed("mail.example.org")
    s.receive(nxt[:3], 108.0, srv)  # a second message starts: 108 + 2, whatever the idle
    assert s.state is TcpState.MESSAGE and s.next_deadline() == 110.0
    s.receive(nxt[3:6], 109.5, srv)
    assert s.next_deadline() == 110.0
    (reply,) = s.receive(nxt[6:], 109.9, srv)  # complete: idle again from its end
    assert s.state is TcpState.IDLE and s.next_deadline() == 119.9
    assert not s.expired(119.8) and s.expired(119.9)


def test_pipelined_tail_starts_the_next_message_deadline() -> None:
    srv = make_server()
    s = session()
    nxt = framed("mail.example.org")
    out = s.receive(framed("www.example.org") + nxt[:4], 100.2, srv)
    assert len(out) == 1 and s.state is TcpState.MESSAGE and s.next_deadline() == 102.2
    out = s.receive(nxt[4:], 101.0, srv)
    assert len(out) == 1 and s.next_deadline() == 111.0


def test_closed_session_has_no_deadline() -> None:
    s = session()
    assert s.receive(b"\x00\x03abc", 100.1, make_server()) == [] and s.closed
    assert s.state is TcpState.CLOSED and s.next_deadline() is None


# -- ConnectionTable, sans-IO -------------------------------------------------------------


def test_client_keys() -> None:
    assert client_key(("192.0.2.1", 1)) == client_key(("192.0.2.1", 2)) == "192.0.2.1"
    assert client_key(("::ffff:192.0.2.1", 1)) == "192.0.2.1"
    assert client_key(("2001:db8:1:2::1", 1)) == client_key(("2001:db8:1:2:ffff::9", 1))
    assert client_key(("2001:db8:1:2::1", 1)) == "2001:db8:1:2::/64"
    assert client_key(("2001:db8:1:3::1", 1)) != client_key(("2001:db8:1:2::1", 1))


def test_per_client_limit_refuses_and_frees() -> None:
    table = ConnectionTable(max_connections=10, max_per_client=2)
    a = [TcpSession(("192.0.2.1", p), 0.0) for p in range(3)]
    assert table.admit(a[0]).admitted and table.admit(a[1]).admitted
    assert table.admit(a[2]) == (False, None) and table.refused_per_client == 1
    v6 = [TcpSession((f"2001:db8::{i}", 1), 0.0) for i in range(1, 4)]
    assert table.admit(v6[0]).admitted and table.admit(v6[1]).admitted
    assert not table.admit(v6[2]).admitted  # the same /64
    assert table.admit(TcpSession(("2001:db8:0:1::1", 1), 0.0)).admitted
    table.remove(a[0])
    table.remove(a[0])  # twice is harmless
    assert table.admit(a[2]).admitted and len(table) == 5


def test_full_table_evicts_the_oldest_still_waiting_else_refuses() -> None:
    srv = make_server()
    table = ConnectionTable(max_connections=3, max_per_client=10)
    done = TcpSession(("192.0.2.1", 1), 0.0)
    waiting = [TcpSession(("192.0.2.2", p), t) for p, t in ((1, 1.0), (2, 2.0))]
    for s in (done, *waiting):
        assert table.admit(s).admitted
    done.receive(framed("www.example.org"), 0.5, srv)  # completed a message: not evictable
    new = TcpSession(("192.0.2.3", 1), 3.0)
    assert table.admit(new) == (True, waiting[0]) and waiting[0].closed
    assert table.evicted == 1 and len(table) == 3
    for s in (waiting[1], new):
        s.receive(framed("www.example.org"), 3.5, srv)
    assert table.admit(TcpSession(("192.0.2.4", 1), 4.0)) == (False, None)
    assert table.refused_full == 1
    table.remove(waiting[0])  # the evicted one's task ends later: nothing to undo
    assert len(table) == 3


# -- the running appliance ------------------------------------------------------------------

INITIAL, MESSAGE, IDLE = 1.0, 2.0, 8.0
MAX_CONN, PER_CLIENT = 8, 4
ARGS = ["--tcp-max-connections", str(MAX_CONN), "--tcp-max-per-client", str(PER_CLIENT),
        "--tcp-initial-timeout", str(INITIAL), "--tcp-message-timeout", str(MESSAGE),
        "--tcp-idle-timeout", str(IDLE)]


CLIENTS = (3, 4, 5, 6, 7, 8, 10, 20, 21)  # last bytes of the clients' addresses (.2 is the
# appliance's own on the TAP)
@pytest.fixture(params=APPLIANCE_STACKS)
def app(request, tmp_path):
    """The appliance with ``ARGS``; ``prefix`` + a byte of ``CLIENTS`` is a client address."""
    net = request.param
    hosts = tuple(f"10.77.0.{last}" for last in CLIENTS)
    with appliance_on(net, ARGS, tmp_path, host_addresses=hosts) as a:
        a.prefix = "127.0.0." if net == "socket" else "10.77.0."
        yield a


def connect(app: RunningAppliance, source: int, timeout: float = 3.0) -> socket.socket:
    """A connection from client ``source`` (the last byte of its address)."""
    return socket.create_connection((app.host, app.port), timeout=timeout,
                                    source_address=(f"{app.prefix}{source}", 0))


def read_reply(s: socket.socket) -> bytes:
    """One framed reply, or b"" if the server closed or reset the connection."""
    buf = b""
    try:
        while len(buf) < 2 or len(buf) < 2 + struct.unpack("!H", buf[:2])[0]:
            chunk = s.recv(4096)
            if not chunk:
                return b""
            buf += chunk
    except (ConnectionResetError, BrokenPipeError):
        return b""
    return buf[2:]


def answered(app: RunningAppliance, source: int) -> socket.socket | None:
    """A connection from ``source`` whose query was answered, kept open; None if refused."""
    try:  # a refused connection is reset (Flow.abort), maybe before connect returns
        s = connect(app, source)
    except ConnectionError:
        return None
    try:
        s.sendall(framed("www.example.org"))
    except (ConnectionResetError, BrokenPipeError):
        s.close()
        return None
    reply = read_reply(s)
    if not reply:
        s.close()
        return None
    assert dns.message.from_wire(reply).answer
    return s


def tcp_answers(app: RunningAppliance) -> bool:
    try:
        return bool(query(app.port, "www.example.org", tcp=True, host=app.host).answer)
    except (ConnectionError, EOFError, OSError):
        return False


def stop_line(app: RunningAppliance) -> str:
    app.stop()
    (line,) = [ln for ln in app.output().splitlines() if "stopping:" in ln]
    return line


def counter(line: str, pattern: str) -> int:
    m = re.search(pattern, line)
    assert m, (pattern, line)
    return int(m.group(1))


def test_tricklers_lose_their_slots_and_do_not_lock_clients_out(app) -> None:
    # 13 attackers from 3 addresses: the fifth is one over the per-client limit, the other
    # 12 are more than the 8 slots; each sends its query's length and then one byte every
    # 0.2 s, never finishing it.
    sources = [3 + i // PER_CLIENT for i in range(3 * PER_CLIENT)]
    sources.insert(PER_CLIENT, sources[0])
    payload = struct.pack("!H", 300) + b"\x00" * 300
    attackers: dict[socket.socket, tuple[float, int]] = {}  # socket -> (connected, bytes sent)
    closed_after: list[float] = []
    with contextlib.ExitStack() as stack:
        def close(s: socket.socket) -> None:
            connected, _ = attackers.pop(s)
            closed_after.append(time.monotonic() - connected)
            s.close()

        for source in sources:
            try:
                s = connect(app, source)
            except ConnectionError:  # refused before connect returned
                closed_after.append(0.0)
                continue
            stack.callback(s.close)
            s.setblocking(False)
            attackers[s] = (time.monotonic(), 0)
        answered_meanwhile = 0
        deadline = time.monotonic() + INITIAL + 10
        while attackers and time.monotonic() < deadline:
            readable, _, _ = select.select(list(attackers), [], [], 0.2)  # pacing the attack
            for s in readable:
                try:
                    data = s.recv(100)
                except (ConnectionResetError, BrokenPipeError):
                    data = b""
                assert data == b""  # never an answer: the query is never complete
                close(s)
            for s, (connected, sent) in list(attackers.items()):
                try:
                    s.send(payload[sent : sent + (2 if sent == 0 else 1)])
                except (ConnectionResetError, BrokenPipeError):
                    close(s)
                    continue
                except BlockingIOError:
                    continue
                attackers[s] = (connected, sent + (2 if sent == 0 else 1))
            # well-behaved clients are answered throughout the attack
            answered_meanwhile += tcp_answers(app)
        assert not attackers, "trickling connections still open"
    assert len(closed_after) == len(sources) and answered_meanwhile >= 3
    # each slot came back within the initial timeout (plus the test's slack), though
    # bytes kept arriving faster than every other timeout
    assert max(closed_after) < INITIAL + 2.5 < IDLE
    # and all the slots are free again: MAX_CONN well-behaved connections held at once
    held = [answered(app, 20 + i // PER_CLIENT) for i in range(MAX_CONN)]
    try:
        assert all(held)
    finally:
        for s in held:
            if s:
                s.close()
    line = stop_line(app)
    assert counter(line, r"(\d+) over the per-client limit") >= 1
    assert counter(line, r"(\d+) evicted before their first message") >= 1
    assert counter(line, r"TCP timeouts (\d+) initial") >= 1


def test_message_deadline_after_the_first_query(app) -> None:
    s = answered(app, 10)
    assert s is not None
    with s:
        start = time.monotonic()
        s.sendall(framed("mail.example.org")[:3])  # and nothing more
        assert read_reply(s) == b""
        waited = time.monotonic() - start
    assert MESSAGE - 0.3 <= waited < IDLE - 1
    assert counter(stop_line(app), r"(\d+) message") == 1


def test_per_client_and_global_limits(app) -> None:
    held = []
    try:
        for _ in range(PER_CLIENT):  # the per-client limit, with answered queries
            s = answered(app, 6)
            assert s is not None
            held.append(s)
        assert answered(app, 6) is None  # one more from the same client: refused
        for _ in range(MAX_CONN - PER_CLIENT):  # another client fills the table
            s = answered(app, 7)
            assert s is not None
            held.append(s)
        # full of connections that completed a message: nothing to evict, refused
        assert answered(app, 8) is None
    finally:
        for s in held:
            s.close()
    wait_until(lambda: tcp_answers(app), what="room for a connection again")
    line = stop_line(app)
    assert counter(line, r"(\d+) over the per-client limit") == 1
    assert counter(line, r"(\d+) with the table full") >= 1
    assert counter(line, r"(\d+) evicted") == 0
