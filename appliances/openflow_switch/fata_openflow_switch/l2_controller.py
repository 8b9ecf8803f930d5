"""The learning-switch controller application: NOX's ``pyswitch``, the controller the
ASPLOS 2013 paper benchmarked (and os-ken's ``simple_switch``), on :mod:`.controller`'s
events.

Per datapath a MAC table (:class:`.learning.LearningSwitch`'s: bounded, aged on the event's
``now``) learns each PACKET_IN's source on its in-port.  A frame to a learned unicast
address gets a flow (in-port and destination to that port, applied at once to the buffered
packet, or followed by a PACKET_OUT of the frame when the switch did not buffer it); a
frame to a broadcast, multicast or unknown address is flooded with a PACKET_OUT; one whose
destination sits behind its own in-port is dropped.
"""

from __future__ import annotations

from .controller import FLOOD, DatapathJoin, DatapathLeave, PacketInEvent
from .learning import DEFAULT_AGING, LearningSwitch
from .ofp_const import OFP_NO_BUFFER

DEFAULT_CAPACITY = 65536


class L2Learning:
    """The application: give it to a :class:`.controller.Controller`."""

    def __init__(self, aging: float = DEFAULT_AGING, capacity: int = DEFAULT_CAPACITY,
                 idle_timeout: int = 0, hard_timeout: int = 0) -> None:
        self.aging, self.capacity = aging, capacity
        self.idle_timeout, self.hard_timeout = idle_timeout, hard_timeout
        self.tables: dict[object, LearningSwitch] = {}
        self.installed = 0
        self.flooded = 0
        self.dropped = 0

    def datapath_join(self, event: DatapathJoin) -> None:
        self.tables[event.datapath] = LearningSwitch((), self.aging, self.capacity)

    def datapath_leave(self, event: DatapathLeave) -> None:
        self.tables.pop(event.datapath, None)

    def packet_in(self, event: PacketInEvent) -> None:
        frame = event.data
        table = self.tables.get(event.datapath)
        if table is None or len(frame) < 14:
            return
        dp, in_port, now = event.datapath, event.in_port, event.now
        dst = frame[0:6]
        table.learn(frame[6:12], in_port, now)
        out = None if dst[0] & 1 else table.lookup(dst, now)
        if out is None:
            self.flooded += 1
            dp.send(in_port, FLOOD, buffer_id=event.buffer_id, data=frame)
        elif out == in_port:
            self.dropped += 1
        else:
            self.installed += 1
            dp.install(in_port, dst, out, buffer_id=event.buffer_id,
                       idle_timeout=self.idle_timeout, hard_timeout=self.hard_timeout)
            if event.buffer_id == OFP_NO_BUFFER:
                dp.send(in_port, out, data=frame)
