"""The network interface device: a raw Ethernet port that moves batches of frames.

What a switch's ports, a router's two interfaces and Fata's own TCP/IP stand on (MirageOS's
``netif "0"``).  On ``unix`` a netif is a TAP device Fata creates or an existing interface
through ``AF_PACKET`` (``fata.platform.netif``); an in-memory pair joins two in one process
(``fata.platform.memory``); the Xen platform adds netfront.

Offloads mirror virtio-net's: with ``csum_offload`` the sender may leave an L4 checksum
partial (``csum_start``/``csum_offset``) for the device to finish, and with ``tso`` it may
hand over one TCP segment larger than the MTU with ``gso_size`` for the device to cut.
A device that vouches for a received frame's checksums says so per frame (a TAP with
offloads delivers locally generated packets whose checksums were never computed).
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence

Receiver = Callable[[bytes, bool], None]
"""``receiver(frame, checksum_trusted)``."""

BatchReceiver = Callable[[Sequence[bytes], bytes], None]
"""``receiver(frames, trusted)``: ``trusted[i]`` is 1 when the device vouched for frame i."""


class Netif(abc.ABC):
    """An Ethernet port: its name, MAC, MTU and link state; frames in and out."""

    name: str = "net0"
    mac: bytes
    mtu: int
    csum_offload: bool = False
    tso: bool = False
    rx_frames: int = 0
    rx_errors: int = 0
    tx_frames: int = 0
    tx_drops: int = 0

    @property
    def link_up(self) -> bool:
        """Whether the link carries frames now (a device that cannot tell says yes)."""
        return True

    @abc.abstractmethod
    def start(self, receiver: Receiver, batch_receiver: BatchReceiver | None = None, *,
              wire: bool = False) -> None:
        """Begin delivering received frames to ``receiver`` (from the event loop).

        A device that reads several frames per wake-up hands them to ``batch_receiver``
        in one call when given one, so the stack can answer them and pass the replies
        back in one ``send_many``.  With ``wire`` every frame is delivered as a wire
        carries it (checksums complete, none over the MTU), which an appliance that forwards
        frames needs; without it a device may hand over offloaded frames, vouched for.
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

        A stack gathers the replies to a batch of received frames and hands them over here
        at once; devices override it to do the loop below in fewer calls.
        """
        send = self.send
        for pieces in frames:
            send(list(pieces), csum_start=csum_start, csum_offset=csum_offset)
