"""The network interface device: moves Ethernet frames, with optional offloads.

A netif hands received frames to one receiver callback and sends frames given to ``send``.
Offloads mirror virtio-net's: with ``csum_offload`` the stack may leave an L4 checksum
partial (``csum_start``/``csum_offset``) for the device to finish, and with ``tso`` it may
hand over one TCP segment larger than the MTU with ``gso_size`` for the device to cut.
``rx_csum_trusted`` is passed per frame when the device vouches for its checksums (a TAP
with offloads delivers locally generated packets whose checksums were never computed).
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Callable

Receiver = Callable[[bytes, bool], None]
"""``receiver(frame, checksum_trusted)``."""


class Netif(abc.ABC):
    """An Ethernet interface."""

    mac: bytes
    mtu: int
    csum_offload: bool = False
    tso: bool = False

    @abc.abstractmethod
    def start(self, receiver: Receiver) -> None:
        """Begin delivering received frames to ``receiver`` (from the event loop)."""

    @abc.abstractmethod
    def send(self, frame: bytes | list[bytes], *, csum_start: int = 0, csum_offset: int = 0,
             gso_size: int = 0) -> None:
        """Send one frame (``list``: its pieces, to avoid a copy); drops when the queue is full.

        ``csum_start``/``csum_offset`` (from the frame's start) ask the device to finish an
        L4 checksum; ``gso_size`` asks it to cut a TCP segment into pieces of that payload.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Stop receiving and release the device."""

    def checksummed_sender(self, csum_start: int,
                           csum_offset: int) -> Callable[[bytes, bytes, bytes], None]:
        """A function sending one frame in three pieces whose L4 checksum the device finishes.

        The per-datagram fast path calls it once per reply; devices override it to skip the
        general ``send``'s argument handling (only meaningful with ``csum_offload``).
        """
        send = self.send
        return lambda a, b, c: send([a, b, c], csum_start=csum_start, csum_offset=csum_offset)


class MemoryWire:
    """Two in-memory netifs joined by a cable that can lose or hold frames.

    Used to run two Fata stacks against each other in one process (TCP corner cases such
    as simultaneous open need two ends that both run this code).  Frames are delivered
    from the event loop with ``call_soon`` so that, like a real wire, sending never re-enters
    the receiver.
    """

    def __init__(self, mtu: int = 1500) -> None:
        self.a = MemoryNetif(b"\x02\0\0\0\0\x0a", mtu)
        self.b = MemoryNetif(b"\x02\0\0\0\0\x0b", mtu)
        self.a.peer = self.b
        self.b.peer = self.a


class MemoryNetif(Netif):
    """One end of a ``MemoryWire``."""

    def __init__(self, mac: bytes, mtu: int) -> None:
        self.mac = mac
        self.mtu = mtu
        self.peer: MemoryNetif | None = None
        self.receiver: Receiver | None = None
        self.filter: Callable[[bytes], bool] | None = None  # return False to drop a frame
        self.sent = 0

    def start(self, receiver: Receiver) -> None:
        """Frames sent by the peer now reach ``receiver``."""
        self.receiver = receiver

    def send(self, frame: bytes | list[bytes], *, csum_start: int = 0, csum_offset: int = 0,
             gso_size: int = 0) -> None:
        """Deliver to the peer on the next loop iteration."""
        data = b"".join(frame) if isinstance(frame, list) else frame
        self.sent += 1
        if self.filter is not None and not self.filter(data):
            return
        peer = self.peer
        if peer is not None and peer.receiver is not None:
            asyncio.get_running_loop().call_soon(peer.receiver, data, False)

    def close(self) -> None:
        """Disconnect."""
        self.receiver = None
