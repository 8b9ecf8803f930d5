"""The fail-standalone data path: a MAC-learning switch as a sans-IO engine.

OpenFlow 1.3.5 (6.4) lets a switch that has lost its controller fall back to acting as a
legacy Ethernet switch.  This is that fallback, kept apart from :mod:`.switch` because it is
no part of the OpenFlow pipeline: no flow tables, no counters a controller reads.  Each
source address is learned on the port it arrived on and forgotten ``aging`` seconds after it
was last seen, on the caller's ``now`` (no clock here); a frame to a learned unicast address
leaves by that port only, a frame to a broadcast, multicast or unknown address is flooded to
every other port, and one whose destination sits behind its own in-port is filtered, as an
802.1D bridge does.  The table holds at most ``capacity`` addresses, the least recently seen
evicted first, so a flood of made-up sources cannot grow it without bound.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

DEFAULT_AGING = 300.0  # 802.1D's default ageing time
DEFAULT_CAPACITY = 8192


class LearningSwitch:
    """MAC learning over ``ports`` (port numbers); :meth:`process` returns frames by port."""

    def __init__(self, ports: Iterable[int], aging: float = DEFAULT_AGING,
                 capacity: int = DEFAULT_CAPACITY) -> None:
        if aging <= 0 or capacity < 1:
            raise ValueError(f"aging {aging} and capacity {capacity} must be positive")
        self.ports = tuple(ports)
        self.aging = aging
        self.capacity = capacity
        self._table: OrderedDict[bytes, tuple[int, float]] = OrderedDict()
        self.flooded = 0
        self.filtered = 0

    def lookup(self, mac: bytes, now: float) -> int | None:
        """The port ``mac`` was learned on, unless it aged out by ``now``."""
        entry = self._table.get(mac)
        if entry is None:
            return None
        port, seen = entry
        if now - seen >= self.aging:
            del self._table[mac]
            return None
        return port

    def learn(self, mac: bytes, port: int, now: float) -> None:
        """Record that ``mac`` was just seen on ``port`` (group addresses are never sources)."""
        if mac[0] & 1:
            return
        table = self._table
        table[mac] = (port, now)
        table.move_to_end(mac)
        while len(table) > self.capacity:
            table.popitem(last=False)

    def process(self, in_port: int, frames: Iterable[bytes], now: float) -> dict[int, list[bytes]]:
        """A batch received on ``in_port``: the frames to send, by output port, in order.
        Frames too short to hold an Ethernet header are dropped."""
        out: dict[int, list[bytes]] = {}
        for frame in frames:
            if len(frame) < 14:
                continue
            dst, src = frame[0:6], frame[6:12]
            self.learn(src, in_port, now)
            port = None if dst[0] & 1 else self.lookup(dst, now)
            if port is None:
                self.flooded += 1
                for other in self.ports:
                    if other != in_port:
                        out.setdefault(other, []).append(frame)
            elif port == in_port:
                self.filtered += 1
            else:
                out.setdefault(port, []).append(frame)
        return out

    def __len__(self) -> int:
        return len(self._table)
