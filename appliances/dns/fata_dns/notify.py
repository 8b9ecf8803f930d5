"""NOTIFY (RFC 1996): telling secondaries that a zone changed, with retransmission.

Sans-IO: :class:`NotifySender` says which datagrams to send when, and consumes the
replies; the unikernel owns the socket and the timer, and hands in the random source that
message IDs come from (the ``Random`` device), so that an off-path attacker cannot guess
the ID of a NOTIFY to forge its acknowledgement.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable
from dataclasses import dataclass

from fata.devices import IPAddress

from fata_dns.lookup import Answer
from fata_dns.records import IN, SOA
from fata_dns.render import AA, render
from fata_dns.zone import Zone

OPCODE_NOTIFY = 4
RETRY_INTERVAL = 2.0  # seconds between retransmissions
MAX_ATTEMPTS = 5  # RFC 1996 section 3.6 suggests a handful


def build_notify(zone: Zone, msg_id: int) -> bytes:
    """A NOTIFY request for ``zone``: question (origin, SOA, IN), our SOA in the answer
    section as the RFC 1996 section 3.7 hint, AA set."""
    question = zone.origin + struct.pack("!HH", SOA, IN)
    ans = Answer()
    ans.answer.append(zone.soa)
    flags, counts, tail = render(question, ans, 65535, None)
    flags = (OPCODE_NOTIFY << 11) | AA
    return struct.pack("!HH", msg_id, flags) + counts + question + tail


@dataclass
class _Pending:
    message: bytes
    target: tuple[str, int]
    origin: bytes
    attempts: int
    due: float


class NotifySender:
    """Outstanding NOTIFY requests; each is retransmitted until answered or given up.

    ``rand(n)`` returns ``n`` random bytes (``Random.bytes``): each message ID is drawn from
    it, never twice for one target while outstanding.
    """

    def __init__(self, rand: Callable[[int], bytes], interval: float = RETRY_INTERVAL,
                 attempts: int = MAX_ATTEMPTS) -> None:
        self.rand = rand
        self.interval = interval
        self.max_attempts = attempts
        self._pending: dict[tuple[int, tuple[str, int]], _Pending] = {}
        self.acknowledged = 0
        self.given_up = 0

    def notify(self, zone: Zone, targets: list[tuple[str, int]], now: float) -> None:
        """Queue a NOTIFY of ``zone`` to each target, superseding older ones for the zone."""
        for key, item in list(self._pending.items()):
            if item.origin == zone.origin:
                del self._pending[key]
        for given in targets:
            target = _endpoint(given)
            msg_id = self._new_id(target)
            message = build_notify(zone, msg_id)
            self._pending[(msg_id, target)] = _Pending(message, target, zone.origin, 0, now)

    def _new_id(self, target: tuple[IPAddress, int]) -> int:
        while True:  # 65,536 IDs per target; a repeat of an outstanding one is drawn again
            msg_id = int.from_bytes(self.rand(2), "big")
            if (msg_id, target) not in self._pending:
                return msg_id

    def on_timer(self, now: float) -> list[tuple[bytes, tuple[str, int]]]:
        """Datagrams to send now (first transmissions and retransmissions)."""
        out = []
        for key, item in list(self._pending.items()):
            if item.due > now:
                continue
            if item.attempts >= self.max_attempts:
                del self._pending[key]
                self.given_up += 1
                continue
            item.attempts += 1
            item.due = now + self.interval
            out.append((item.message, item.target))
        return out

    def next_deadline(self) -> float | None:
        """When :meth:`on_timer` next has something to do, if ever."""
        return min((p.due for p in self._pending.values()), default=None)

    def on_reply(self, payload: bytes, peer: tuple[object, int]) -> bool:
        """Consume a datagram; True if it acknowledged one of our NOTIFYs."""
        if len(payload) < 12 or not payload[2] & 0x80 or (payload[2] >> 3) & 0xF != OPCODE_NOTIFY:
            return False
        msg_id = int.from_bytes(payload[:2], "big")
        try:
            item = self._pending.pop((msg_id, _endpoint(peer)), None)
        except ValueError:
            return False
        if item is None:
            return False
        self.acknowledged += 1
        return True

    @property
    def pending(self) -> int:
        """How many NOTIFYs are still unanswered."""
        return len(self._pending)


def _endpoint(address: tuple[object, int]) -> tuple[IPAddress, int]:
    """A target or sender as one comparable form, whether given as text or address object."""
    return ipaddress.ip_address(address[0]), address[1]
