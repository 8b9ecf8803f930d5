"""In-memory netifs: two ports joined by a cable that can lose or hold frames.

Used to run two Fata stacks (or a stack and a switch) against each other in one process:
TCP corner cases such as simultaneous open need two ends that both run this code, and the
device conformance suite runs Fata's own stack over it.  Frames are delivered from the
event loop with ``call_soon`` so that, like a real wire, sending never re-enters the
receiver.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from fata.devices.netif import BatchReceiver, Netif, Receiver


class MemoryWire:
    """Two ``MemoryNetif`` ends, ``a`` and ``b``."""

    def __init__(self, mtu: int = 1500) -> None:
        self.a = MemoryNetif(b"\x02\0\0\0\0\x0a", mtu, "mem-a")
        self.b = MemoryNetif(b"\x02\0\0\0\0\x0b", mtu, "mem-b")
        self.a.peer = self.b
        self.b.peer = self.a


class MemoryNetif(Netif):
    """One end of a ``MemoryWire``."""

    def __init__(self, mac: bytes, mtu: int, name: str = "mem") -> None:
        self.name = name
        self.mac = mac
        self.mtu = mtu
        self.peer: MemoryNetif | None = None
        self.receiver: Receiver | None = None
        self.filter: Callable[[bytes], bool] | None = None  # return False to drop a frame
        self.sent = 0

    def start(self, receiver: Receiver, batch_receiver: BatchReceiver | None = None, *,
              wire: bool = False) -> None:
        """Frames sent by the peer now reach ``receiver`` (one at a time, as they come;
        always complete, so ``wire`` changes nothing)."""
        self.receiver = receiver

    def send(self, frame: bytes | list[bytes], *, csum_start: int = 0, csum_offset: int = 0,
             gso_size: int = 0) -> None:
        """Deliver to the peer on the next loop iteration."""
        data = b"".join(frame) if isinstance(frame, list) else frame
        self.sent += 1
        self.tx_frames += 1
        if self.filter is not None and not self.filter(data):
            self.tx_drops += 1
            return
        peer = self.peer
        if peer is not None and peer.receiver is not None:
            asyncio.get_running_loop().call_soon(peer.deliver, data)

    def deliver(self, frame: bytes) -> None:
        """A frame from the cable."""
        receiver = self.receiver
        if receiver is not None:
            self.rx_frames += 1
            receiver(frame, False)

    @property
    def link_up(self) -> bool:
        """Up while both ends are attached."""
        return self.receiver is not None and self.peer is not None \
            and self.peer.receiver is not None

    def close(self) -> None:
        """Disconnect."""
        self.receiver = None
