"""The connection states of RFC 9293 and the moves between them, as a table.

In the style of h11's ``_state.py``: states are an enum and the allowed moves are a table
``{(state, event): next_state}`` (RFC 9293 §3.3.2, figure 5).  A connection changes state
only through ``transition`` (``Connection._to``), which refuses a move the table does not
list with ``TcpStateError``: a code path that would put a connection somewhere the RFC does
not allow is a bug, and it surfaces as an error in the tests (and in the direct stack's
internal-error counter) instead of a connection drifting on in a wrong state.

LISTEN is not a connection state here: a ``Listener`` holds it, and a SYN arriving there
creates a connection in CLOSED that moves at once to SYN-RECEIVED (``Event.RCV_SYN``).
"""

from __future__ import annotations

import enum


class State(enum.IntEnum):
    """RFC 9293 connection states (LISTEN lives in ``Listener``)."""

    CLOSED = 0
    SYN_SENT = 1
    SYN_RECEIVED = 2
    ESTABLISHED = 3
    FIN_WAIT_1 = 4
    FIN_WAIT_2 = 5
    CLOSE_WAIT = 6
    CLOSING = 7
    LAST_ACK = 8
    TIME_WAIT = 9


class Event(enum.Enum):
    """What moves a connection from one state to another (the labels of RFC 9293 figure 5).

    A plain enum, not an int: a state passed where an event belongs matches nothing."""

    OPEN = "open"
    """Active open: our SYN goes out."""
    RCV_SYN = "rcv_syn"
    """A SYN without ACK: at a listener (passive open) or in SYN-SENT (simultaneous open)."""
    SYN_ACKED = "syn_acked"
    """The peer acknowledged our SYN: the handshake is complete."""
    CLOSE = "close"
    """The application closed: our FIN is queued after the data (or SYN-SENT is abandoned)."""
    RCV_FIN = "rcv_fin"
    """The peer's FIN arrived in sequence."""
    FIN_ACKED = "fin_acked"
    """The peer acknowledged our FIN."""
    TIMEWAIT_EXPIRED = "timewait_expired"
    """TIME-WAIT lasted its 2 MSL."""
    DELETE = "delete"
    """The control block goes: a reset accepted or sent, the application's abort, a
    retransmission or keepalive timeout, or a new SYN taking over a TIME-WAIT."""


_S = State
_E = Event

TRANSITIONS: dict[tuple[State, Event], State] = {
    # opening (figure 5, upper half; RFC 9293 §3.5 figure 7 for the simultaneous open)
    (_S.CLOSED, _E.OPEN): _S.SYN_SENT,
    (_S.CLOSED, _E.RCV_SYN): _S.SYN_RECEIVED,
    (_S.SYN_SENT, _E.RCV_SYN): _S.SYN_RECEIVED,
    (_S.SYN_SENT, _E.SYN_ACKED): _S.ESTABLISHED,
    (_S.SYN_RECEIVED, _E.SYN_ACKED): _S.ESTABLISHED,
    (_S.SYN_SENT, _E.CLOSE): _S.CLOSED,
    # closing first (a close in SYN-RECEIVED queues the FIN; it is sent once ESTABLISHED)
    (_S.ESTABLISHED, _E.CLOSE): _S.FIN_WAIT_1,
    (_S.FIN_WAIT_1, _E.FIN_ACKED): _S.FIN_WAIT_2,
    (_S.FIN_WAIT_1, _E.RCV_FIN): _S.CLOSING,
    (_S.FIN_WAIT_2, _E.RCV_FIN): _S.TIME_WAIT,
    (_S.CLOSING, _E.FIN_ACKED): _S.TIME_WAIT,
    (_S.TIME_WAIT, _E.TIMEWAIT_EXPIRED): _S.CLOSED,
    # closing second
    (_S.ESTABLISHED, _E.RCV_FIN): _S.CLOSE_WAIT,
    (_S.CLOSE_WAIT, _E.CLOSE): _S.LAST_ACK,
    (_S.LAST_ACK, _E.FIN_ACKED): _S.CLOSED,
    # any live connection can be deleted
    **{(state, _E.DELETE): _S.CLOSED for state in State if state != _S.CLOSED},
}
"""Every allowed move: ``(state, event) -> next state``; anything else is a bug."""


class TcpStateError(RuntimeError):
    """A state change the transition table does not allow (a bug in the engine)."""

    def __init__(self, state: State, event: Event) -> None:
        super().__init__(f"no TCP transition for {event.name} in {state.name}")
        self.state = state
        self.event = event


def transition(state: State, event: Event) -> State:
    """The state ``event`` leads to from ``state``; ``TcpStateError`` if the table has none."""
    new = TRANSITIONS.get((state, event))
    if new is None:
        raise TcpStateError(state, event)
    return new


SENDING = frozenset({State.ESTABLISHED, State.CLOSE_WAIT, State.FIN_WAIT_1, State.CLOSING,
                     State.LAST_ACK})
"""States in which data or a FIN of ours may be (re)transmitted."""
RECEIVING = frozenset({State.ESTABLISHED, State.FIN_WAIT_1, State.FIN_WAIT_2})
"""States in which the peer's data and FIN are accepted."""
APP_CAN_SEND = frozenset({State.SYN_SENT, State.SYN_RECEIVED, State.ESTABLISHED,
                          State.CLOSE_WAIT})
"""States in which ``app_send`` queues data (sent once the handshake completes)."""
