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
from collections.abc import Callable, Sequence

Receiver = Callable[[bytes, bool], None]
"""``receiver(frame, checksum_trusted)``."""

BatchReceiver = Callable[[Sequence[bytes], bytes], None]
"""``receiver(frames, trusted)``: ``trusted[i]`` is 1 when the device vouched for frame i."""


class Netif(abc.ABC):
    """An Ethernet interface."""

    mac: bytes
    mtu: int
    csum_offload: bool = False
    tso: bool = False

    @abc.abstractmethod
    def start(self, receiver: Receiver, batch_receiver: BatchReceiver | None = None) -> None:
        """Begin delivering received frames to ``receiver`` (from the event loop).

        A device that reads several frames per wake-up hands them to ``batch_receiver``
        in one call when given one, so the stack can answer them and pass the replies
        back in one ``send_many``.
        """

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

    def send_many(self, frames: list[tuple[bytes, ...]], *, csum_start: int = 0,
                  csum_offset: int = 0) -> None:
        """Send several frames, each given as its pieces, with the same checksum request.

        The datagram fast path gathers the replies to a batch of received frames and hands
        them over here at once; devices override it to do the loop below in fewer calls.
        """
        send = self.send
        for pieces in frames:
            send(list(pieces), csum_start=csum_start, csum_offset=csum_offset)


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

    def start(self, receiver: Receiver, batch_receiver: BatchReceiver | None = None) -> None:
        """Frames sent by the peer now reach ``receiver`` (one at a time, as they come)."""
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
