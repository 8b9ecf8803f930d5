"""A ``Netif`` over a file descriptor that carries one Ethernet frame per read and write.

Both of ``unix``'s raw ports are such descriptors: a TAP device (``fata.platform.tap``) and a
packet socket bound to an existing interface (``fata.platform.packet``).  Both are opened
with a virtio-net header on every frame, which lets the stack hand the kernel TCP segments of
up to 64 KB with a partial checksum (``gso_size``/``csum_start``), and lets the kernel hand us
large, unchecksummed segments, so Python touches one packet where the wire carries forty.
The fd is non-blocking and read from the event loop's reader callback, draining a batch per
wake-up.  With the optional C module ``fata.platform._frames`` a batch is read, and the
replies to it written, in one call each way (the kernel still takes one system call per frame).
In wire mode (a forwarder's) the C reader strips the header of every frame that needs no
finishing and hands over only the others with theirs, for ``fata.net.offload``.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
from contextlib import suppress

from fata.devices.netif import BatchReceiver, Netif, Receiver
from fata.net import offload
from fata.net.errors import ParseError

try:
    from fata.platform import _frames
except ImportError:  # built without a C compiler: one os.readv/os.writev per frame
    _frames = None  # type: ignore[assignment]

VNET_HDR = struct.Struct("<BBHHHH")
VNET_HDR_LEN = 10
VIRTIO_NET_HDR_F_NEEDS_CSUM = 1
VIRTIO_NET_HDR_F_DATA_VALID = 2
VIRTIO_NET_HDR_GSO_TCPV4 = 1
READ_BATCH = 256
READ_BUDGET = 256 * 1024  # bytes per batch: 64 KB segments in the hundreds would thrash caches
READ_SIZE = 65536 + 256
SOL_PACKET = 263
PACKET_AUXDATA = 8
TP_STATUS_VLAN_VALID = 1 << 4
TP_STATUS_VLAN_TPID_VALID = 1 << 6
AUXDATA = struct.Struct("=IIIHHHH")  # struct tpacket_auxdata
AUXDATA_SPACE = socket.CMSG_SPACE(AUXDATA.size)


class FdNetif(Netif):
    """Frames over a descriptor, each behind a virtio-net header when ``vnet_hdr``."""

    def __init__(self, fd: int, name: str, mac: bytes, mtu: int, vnet_hdr: bool) -> None:
        self.fd = fd
        self.name = name
        self.mac = mac
        self.mtu = mtu
        self.vnet_hdr = vnet_hdr
        self.csum_offload = vnet_hdr
        self.tso = vnet_hdr
        self.rx_frames = 0
        self.tx_frames = 0
        self.tx_drops = 0
        self.rx_errors = 0
        self._wire = False
        # A packet socket with PACKET_AUXDATA: the kernel strips a received frame's VLAN tag
        # into the auxiliary data, and it is put back (a switch or bridge must see it).
        self.vlan_auxdata = False
        self._receiver: Receiver | None = None
        self._batch_receiver: BatchReceiver | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._buf = bytearray(READ_SIZE)
        self._view = memoryview(self._buf)
        self._iov = [self._buf]
        self._plain_hdr = VNET_HDR.pack(0, 0, 0, 0, 0, 0)
        self._csum_hdrs: dict[tuple[int, int], bytes] = {}
        self._sock: socket.socket | None = None  # the fd as a socket, for recvmsg

    def start(self, receiver: Receiver, batch_receiver: BatchReceiver | None = None, *,
              wire: bool = False) -> None:
        """Read frames from the event loop, a batch per wake-up (in one call if given one);
        ``wire``: finish offloads first (``fata.net.offload``), for forwarders."""
        self._receiver = receiver
        self._batch_receiver = batch_receiver
        self._wire = wire and self.vnet_hdr
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.fd, self._on_readable)

    def _on_readable(self) -> None:
        receiver = self._receiver
        if receiver is None:
            return
        tag_at = 12 if self.vlan_auxdata else 0  # a stripped tag goes after the MACs
        if _frames is not None:
            # Wire mode reads the header too; C hands over with it only the frames that
            # need finishing (marked 2), so the common frame costs no Python at all.
            header = VNET_HDR_LEN if self.vnet_hdr else 0
            frames, trusted = _frames.read_frames(self.fd, READ_BATCH, header, READ_BUDGET,
                                                  tag_at, self._wire)
            if self._wire:
                frames, trusted = self._finish(frames, trusted)
        else:
            header = VNET_HDR_LEN if self.vnet_hdr and not self._wire else 0
            if tag_at and self._wire:
                tag_at += VNET_HDR_LEN
            frames, trusted = self._read_frames(header, tag_at)
            if self._wire:
                frames, trusted = self._finish(frames)
        if not frames:
            return
        self.rx_frames += len(frames)
        if self._batch_receiver is not None:
            self._batch_receiver(frames, trusted)
        else:
            for frame, vouched in zip(frames, trusted, strict=True):
                receiver(frame, bool(vouched))

    def _finish(self, raw: list[bytes], marks: bytes | None = None
                ) -> tuple[list[bytes], bytes]:
        """Frames as the wire would carry them: those read with their virtio-net header
        (all of ``raw``, or those ``marks`` says with a 2) finished by ``offload``."""
        if marks is not None and 2 not in marks:
            return raw, bytes(len(raw))  # nothing to finish: the common batch
        frames: list[bytes] = []
        for i, data in enumerate(raw):
            if marks is not None and marks[i] != 2:
                frames.append(data)
                continue
            if len(data) < VNET_HDR_LEN + 14:
                self.rx_errors += 1
                continue
            hdr = offload.VnetHeader.parse(data)
            frame = data[VNET_HDR_LEN:]
            if not hdr.flags & offload.NEEDS_CSUM and not hdr.gso_type:
                frames.append(frame)
                continue
            try:
                frames.extend(offload.finish(frame, hdr))
            except ParseError:
                self.rx_errors += 1
        return frames, bytes(len(frames))  # finished here: nothing is vouched for

    def _read_frames(self, header: int, tag_at: int = 0) -> tuple[list[bytes], bytes]:
        """``_frames.read_frames`` in Python, for installs built without a C compiler: each
        frame by ``os.readv``, or with ``tag_at`` by ``recvmsg``, its stripped VLAN tag put
        back from the PACKET_AUXDATA control message."""
        frames: list[bytes] = []
        trusted = bytearray()
        budget = READ_BUDGET
        read = self._recv_one if tag_at else self._readv_one
        for _ in range(READ_BATCH):
            if budget <= 0:
                break
            try:
                data, tag = read()
            except OSError:  # EAGAIN: drained (other errors: the fd is going away)
                break
            if len(data) < header or not data:
                continue
            budget -= len(data)
            frame = data[header:]
            if tag is not None and len(frame) >= tag_at:
                frame = frame[:tag_at] + tag + frame[tag_at:]
            frames.append(frame)
            trusted.append(1 if header and data[0] & (VIRTIO_NET_HDR_F_NEEDS_CSUM
                                                      | VIRTIO_NET_HDR_F_DATA_VALID) else 0)
        return frames, bytes(trusted)

    def _readv_one(self) -> tuple[bytes, None]:
        n = os.readv(self.fd, self._iov)
        return self._view[:n].tobytes(), None

    def _recv_one(self) -> tuple[bytes, bytes | None]:
        """One frame and the VLAN tag the kernel took off it (wire bytes), if any."""
        sock = self._sock
        if sock is None:
            sock = self._sock = socket.socket(fileno=self.fd)
        data, ancillary, _, _ = sock.recvmsg(READ_SIZE, AUXDATA_SPACE)
        for level, kind, aux in ancillary:
            if level == SOL_PACKET and kind == PACKET_AUXDATA and len(aux) >= AUXDATA.size:
                status, _, _, _, _, tci, tpid = AUXDATA.unpack_from(aux)
                if status & TP_STATUS_VLAN_VALID:
                    tpid = tpid if status & TP_STATUS_VLAN_TPID_VALID else 0x8100
                    return data, struct.pack("!HH", tpid, tci)
        return data, None

    def send(self, frame: bytes | list[bytes], *, csum_start: int = 0, csum_offset: int = 0,
             gso_size: int = 0) -> None:
        """Write one frame; a full queue drops it (the wire's semantics)."""
        if self.vnet_hdr:
            if csum_start and gso_size:
                hdr_len = len(frame[0]) + len(frame[1])
                head = VNET_HDR.pack(VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_TCPV4,
                                     hdr_len, gso_size, csum_start, csum_offset)
            else:
                head = self._head(csum_start, csum_offset)
            pieces = [head, *frame] if isinstance(frame, list) else [head, frame]
        else:
            pieces = frame if isinstance(frame, list) else [frame]
        try:
            os.writev(self.fd, pieces)
            self.tx_frames += 1
        except OSError:  # a full queue (EAGAIN) or a closing device
            self.tx_drops += 1

    def send_many(self, frames: list[tuple[bytes, ...]], *, csum_start: int = 0,
                  csum_offset: int = 0) -> None:
        """Write frames given as pieces, all with the same checksum request, in one call."""
        if _frames is None:
            super().send_many(frames, csum_start=csum_start, csum_offset=csum_offset)
            return
        head = self._head(csum_start, csum_offset) if self.vnet_hdr else b""
        dropped = _frames.write_frames(self.fd, head, frames) if self.fd >= 0 else len(frames)
        self.tx_frames += len(frames) - dropped
        self.tx_drops += dropped

    def _head(self, csum_start: int, csum_offset: int) -> bytes:
        """The virtio-net header of a frame that is not a GSO segment (cached per offset)."""
        if not csum_start:
            return self._plain_hdr
        head = self._csum_hdrs.get((csum_start, csum_offset))
        if head is None:
            head = self._csum_hdrs[(csum_start, csum_offset)] = VNET_HDR.pack(
                VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 0, 0, csum_start, csum_offset)
        return head

    def close(self) -> None:
        """Stop reading and close the fd (a non-persistent TAP then disappears)."""
        if self.fd < 0:
            return
        if self._loop is not None:
            with suppress(Exception):
                self._loop.remove_reader(self.fd)
        if self._sock is not None:
            self._sock.detach()  # the fd is closed once, below
        os.close(self.fd)
        self.fd = -1
