"""The TCP state machine as a table: the table is RFC 9293's, every other move is refused,
and connections driven through opens, closes and resets move only along the table, using
every edge of it."""

from __future__ import annotations

import itertools

import pytest
from fata.net import tcp_wire
from fata.net.tcp import TRANSITIONS, Connection, Event, State, TcpStateError, transition
from fata.net.tcp import connection as connection_module

from .test_tcp_sim import IP_A, IP_B, Sim

S = State
E = Event

# RFC 9293 figure 5 (and §3.5 figure 7 for the simultaneous open), LISTEN folded into the
# listener: a connection is created CLOSED when a SYN reaches a listener.
RFC_9293_FIGURE_5 = {
    (S.CLOSED, E.OPEN): S.SYN_SENT,
    (S.CLOSED, E.RCV_SYN): S.SYN_RECEIVED,
    (S.SYN_SENT, E.RCV_SYN): S.SYN_RECEIVED,
    (S.SYN_SENT, E.SYN_ACKED): S.ESTABLISHED,
    (S.SYN_RECEIVED, E.SYN_ACKED): S.ESTABLISHED,
    (S.SYN_SENT, E.CLOSE): S.CLOSED,
    (S.ESTABLISHED, E.CLOSE): S.FIN_WAIT_1,
    (S.FIN_WAIT_1, E.FIN_ACKED): S.FIN_WAIT_2,
    (S.FIN_WAIT_1, E.RCV_FIN): S.CLOSING,
    (S.FIN_WAIT_2, E.RCV_FIN): S.TIME_WAIT,
    (S.CLOSING, E.FIN_ACKED): S.TIME_WAIT,
    (S.TIME_WAIT, E.TIMEWAIT_EXPIRED): S.CLOSED,
    (S.ESTABLISHED, E.RCV_FIN): S.CLOSE_WAIT,
    (S.CLOSE_WAIT, E.CLOSE): S.LAST_ACK,
    (S.LAST_ACK, E.FIN_ACKED): S.CLOSED,
}


def test_table_is_rfc_9293_figure_5_plus_deletion_from_every_live_state() -> None:
    deletions = {(state, E.DELETE): S.CLOSED for state in State if state != S.CLOSED}
    assert dict(TRANSITIONS) == {**RFC_9293_FIGURE_5, **deletions}


@pytest.mark.parametrize(("state", "event"), [
    (s, e) for s, e in itertools.product(State, Event) if (s, e) not in TRANSITIONS],
    ids=lambda v: v.name)
def test_every_move_the_table_does_not_list_is_refused(state: State, event: Event) -> None:
    with pytest.raises(TcpStateError, match=f"{event.name} in {state.name}"):
        transition(state, event)


def test_a_state_is_not_an_event() -> None:
    with pytest.raises(TcpStateError):
        transition(State.CLOSED, State.CLOSED)  # type: ignore[arg-type]


def test_every_state_is_reachable_and_every_state_can_end() -> None:
    reach = {S.CLOSED}
    while True:
        more = {new for (old, _), new in TRANSITIONS.items() if old in reach} - reach
        if not more:
            break
        reach |= more
    assert reach == set(State)
    ends = {S.CLOSED}
    while True:
        more = {old for (old, _), new in TRANSITIONS.items() if new in ends} - ends
        if not more:
            break
        ends |= more
    assert ends == set(State)


def established_pair(seed: int = 1) -> tuple[Sim, Connection, Connection]:
    sim = Sim(seed, 0.0, 0.01, 0.0)
    sim.a.config.msl = sim.b.config.msl = 0.5
    sim.b.listen(b"\0\0\0\0", 9000, 8)
    client = sim.a.connect(IP_A, 40000, IP_B, 9000, sim.now)
    while client.state != S.ESTABLISHED or not sim.b.accepted:
        sim.ship()
        assert sim.step()
    server = sim.b.accepted.pop()
    sim.b.accepted_by_app(server)
    return sim, client, server


def settle(sim: Sim, until: float = 60.0) -> None:
    """Run the link and both engines up to ``until`` (simulated seconds)."""
    while True:
        sim.ship()
        due = [t for t in (sim.a.next_deadline(), sim.b.next_deadline()) if t is not None]
        if sim.events:
            due.append(sim.events[0][0])
        if not due or min(due) > until:
            return
        sim.step()


def test_an_illegal_move_is_an_error_and_leaves_the_state_alone() -> None:
    _, client, _ = established_pair()
    with pytest.raises(TcpStateError):
        client._to(Event.FIN_ACKED)
    with pytest.raises(TcpStateError):
        client._to(Event.TIMEWAIT_EXPIRED)
    assert client.state == S.ESTABLISHED


@pytest.fixture
def moves(monkeypatch: pytest.MonkeyPatch) -> list[tuple[State, Event, State]]:
    """Every transition any connection makes while the test runs."""
    seen: list[tuple[State, Event, State]] = []

    def recording(state: State, event: Event) -> State:
        new = transition(state, event)
        seen.append((state, event, new))
        return new

    monkeypatch.setattr(connection_module, "transition", recording)
    return seen


def test_connections_walk_every_edge_of_the_table(
        moves: list[tuple[State, Event, State]]) -> None:
    # the client closes first: FIN-WAIT-1, FIN-WAIT-2, TIME-WAIT; the server CLOSE-WAIT,
    # LAST-ACK, CLOSED
    sim, client, server = established_pair(1)
    client.app_send(b"request", sim.now)
    client.app_close(sim.now)
    settle(sim, sim.now + 0.2)
    assert server.app_read(100, sim.now) == b"request" and server.state == S.CLOSE_WAIT
    server.app_send(b"reply", sim.now)
    server.app_close(sim.now)
    settle(sim)
    assert client.state == server.state == S.CLOSED and client.app_read(100, sim.now) == b"reply"

    # simultaneous open, then simultaneous close: SYN-RECEIVED from SYN-SENT, CLOSING
    sim = Sim(2, 0.0, 0.01, 0.0)
    sim.a.config.msl = sim.b.config.msl = 0.5
    a = sim.a.connect(IP_A, 5000, IP_B, 6000, 0.0)
    b = sim.b.connect(IP_B, 6000, IP_A, 5000, 0.0)
    while a.state != S.ESTABLISHED or b.state != S.ESTABLISHED:
        sim.ship()
        assert sim.step()
    a.app_close(sim.now)
    b.app_close(sim.now)
    settle(sim)
    assert a.state == b.state == S.CLOSED

    # a close before the handshake completes; a reset; an abort
    sim = Sim(3, 0.0, 0.01, 0.0)
    lonely = sim.a.connect(IP_A, 7000, IP_B, 9999, 0.0)
    lonely.app_close(sim.now)
    refused = sim.a.connect(IP_A, 7001, IP_B, 9999, 0.0)
    settle(sim)
    assert isinstance(refused.error, ConnectionRefusedError)
    sim, client, server = established_pair(4)
    client.app_abort(sim.now)
    settle(sim)
    assert isinstance(server.error, ConnectionResetError)

    assert {(old, event) for old, event, _ in moves} >= set(RFC_9293_FIGURE_5)
    assert all(TRANSITIONS[old, event] == new for old, event, new in moves)


def test_a_close_in_syn_received_sends_the_fin_once_established(
        moves: list[tuple[State, Event, State]]) -> None:
    sim = Sim(5, 0.0, 0.01, 0.0)
    a = sim.a.connect(IP_A, 5000, IP_B, 6000, 0.0)
    sim.b.connect(IP_B, 6000, IP_A, 5000, 0.0)
    while a.state != S.SYN_RECEIVED:
        sim.ship()
        assert sim.step()
    a.app_close(sim.now)  # the FIN waits for the handshake
    assert a.state == S.SYN_RECEIVED and a.fin_queued
    settle(sim, 5)
    walked = [(old, event) for old, event, _ in moves if old in (S.SYN_RECEIVED, S.ESTABLISHED)
              and event in (E.SYN_ACKED, E.CLOSE)]
    assert (S.SYN_RECEIVED, E.SYN_ACKED) in walked and (S.ESTABLISHED, E.CLOSE) in walked


def test_a_new_syn_takes_over_time_wait(moves: list[tuple[State, Event, State]]) -> None:
    """RFC 9293 §3.6.1: a SYN above rcv_nxt in TIME-WAIT deletes the old connection and
    reaches the listener as a new one."""
    sim, client, server = established_pair(6)
    sim.a.config.msl = sim.b.config.msl = 30
    server.app_close(sim.now)
    settle(sim, sim.now + 0.2)
    client.app_close(sim.now)
    settle(sim, sim.now + 0.2)
    assert server.state == S.TIME_WAIT
    syn = tcp_wire.Segment(40000, 9000, (server.rcv_nxt + 100_000) & 0xFFFFFFFF, 0,
                           tcp_wire.SYN, 65535)
    sim.b.input(IP_A, IP_B, syn, sim.now)
    assert server.state == S.CLOSED
    assert (S.TIME_WAIT, E.DELETE, S.CLOSED) in moves
    fresh = sim.b.conns[(IP_B, 9000, IP_A, 40000)]
    assert fresh is not server and fresh.state == S.SYN_RECEIVED
