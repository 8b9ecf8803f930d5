"""TAP devices: a ``Netif`` over ``/dev/net/tun``, created and configured with pyroute2.

The TAP is opened with ``IFF_VNET_HDR`` so that every frame carries a virtio-net header:
that lets the stack hand the kernel TCP segments of up to 64 KB with a partial checksum
(``gso_size``/``csum_start``), and lets the kernel hand us large, unchecksummed segments
(``TUNSETOFFLOAD``), so Python touches one packet where the wire carries forty.  The fd is
non-blocking and read from the event loop's reader callback, draining a batch per wake-up.
With the optional C module ``fata.platform._frames`` a batch is read, and the replies to it
written, in one call each way (a TAP still takes one system call per frame).
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import struct
from contextlib import suppress

from fata.net.netif import BatchReceiver, Netif, Receiver
from fata.platform import PlatformError

try:
    from fata.platform import _frames
except ImportError:  # built without a C compiler: one os.readv/os.writev per frame
    _frames = None  # type: ignore[assignment]

TUNSETIFF = 0x400454CA
TUNGETFEATURES = 0x800454CF
TUNSETOFFLOAD = 0x400454D0
TUNSETVNETHDRSZ = 0x400454D8
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
TUN_F_CSUM = 0x01
TUN_F_TSO4 = 0x02
TUN_F_TSO6 = 0x04
VNET_HDR = struct.Struct("<BBHHHH")
VNET_HDR_LEN = 10
VIRTIO_NET_HDR_F_NEEDS_CSUM = 1
VIRTIO_NET_HDR_F_DATA_VALID = 2
VIRTIO_NET_HDR_GSO_TCPV4 = 1
READ_BATCH = 256
READ_BUDGET = 256 * 1024  # bytes per batch: 64 KB segments in the hundreds would thrash caches
READ_SIZE = 65536 + 256
NEEDS_CAP = ("--net direct needs CAP_NET_ADMIN to create and configure the TAP device "
             "(run as root, or create it beforehand with "
             "`ip tuntap add {name} mode tap user $USER`, address and bring it up yourself)")


class TapNetif(Netif):
    """A TAP device as seen from user space."""

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
        self._receiver: Receiver | None = None
        self._batch_receiver: BatchReceiver | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._buf = bytearray(READ_SIZE)
        self._view = memoryview(self._buf)
        self._iov = [self._buf]
        self._plain_hdr = VNET_HDR.pack(0, 0, 0, 0, 0, 0)
        self._csum_hdrs: dict[tuple[int, int], bytes] = {}

    @classmethod
    def open(cls, name: str, *, mtu: int = 1500, mac: bytes | None = None,
             vnet_hdr: bool = True, offload: bool = True) -> TapNetif:
        """Create (or attach to) TAP ``name``; raises ``PlatformError`` when not allowed."""
        try:
            fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError as exc:
            raise PlatformError("--net direct needs /dev/net/tun (load the tun module, or "
                                "pass --device /dev/net/tun to the container)") from exc
        except PermissionError as exc:
            raise PlatformError(NEEDS_CAP.format(name=name)) from exc
        try:
            if vnet_hdr:
                features = struct.unpack("I", fcntl.ioctl(fd, TUNGETFEATURES, b"\0" * 4))[0]
                vnet_hdr = bool(features & IFF_VNET_HDR)
            flags = IFF_TAP | IFF_NO_PI | (IFF_VNET_HDR if vnet_hdr else 0)
            ifr = struct.pack("16sH22x", name.encode(), flags)
            try:
                fcntl.ioctl(fd, TUNSETIFF, ifr)
            except PermissionError as exc:
                raise PlatformError(NEEDS_CAP.format(name=name)) from exc
            except OSError as exc:
                if exc.errno in (errno.EPERM, errno.EACCES):
                    raise PlatformError(NEEDS_CAP.format(name=name)) from exc
                raise PlatformError(f"cannot open TAP {name!r}: {exc.strerror}") from exc
            if vnet_hdr:
                fcntl.ioctl(fd, TUNSETVNETHDRSZ, struct.pack("i", VNET_HDR_LEN))
                if offload:
                    try:
                        fcntl.ioctl(fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)
                    except OSError:
                        pass  # the kernel then sends plain frames, which we also handle
        except BaseException:
            os.close(fd)
            raise
        if mac is None:
            mac = bytes([0x02]) + os.urandom(5)  # locally administered, unicast
        return cls(fd, name, mac, mtu, vnet_hdr)

    def start(self, receiver: Receiver, batch_receiver: BatchReceiver | None = None) -> None:
        """Read frames from the event loop, a batch per wake-up (in one call if given one)."""
        self._receiver = receiver
        self._batch_receiver = batch_receiver
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.fd, self._on_readable)

    def _on_readable(self) -> None:
        receiver = self._receiver
        if receiver is None:
            return
        header = VNET_HDR_LEN if self.vnet_hdr else 0
        if _frames is not None:
            frames, trusted = _frames.read_frames(self.fd, READ_BATCH, header, READ_BUDGET)
        else:
            frames, trusted = self._read_frames(header)
        if not frames:
            return
        self.rx_frames += len(frames)
        if self._batch_receiver is not None:
            self._batch_receiver(frames, trusted)
        else:
            for frame, vouched in zip(frames, trusted, strict=True):
                receiver(frame, bool(vouched))

    def _read_frames(self, header: int) -> tuple[list[bytes], bytes]:
        """``_frames.read_frames`` in Python, for installs built without a C compiler."""
        buf = self._buf
        view = self._view
        fd = self.fd
        iov = self._iov
        readv = os.readv
        frames: list[bytes] = []
        trusted = bytearray()
        budget = READ_BUDGET
        for _ in range(READ_BATCH):
            if budget <= 0:
                break
            try:
                n = readv(fd, iov)
            except OSError:  # EAGAIN: drained (other errors: the fd is going away)
                break
            if n < header or not n:
                continue
            budget -= n
            frames.append(view[header:n].tobytes())
            trusted.append(1 if header and buf[0] & (VIRTIO_NET_HDR_F_NEEDS_CSUM
                                                     | VIRTIO_NET_HDR_F_DATA_VALID) else 0)
        return frames, bytes(trusted)

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
        os.close(self.fd)
        self.fd = -1


def configure_host(name: str, host_cidr: str | None, mtu: int) -> None:
    """Bring the host side of TAP ``name`` up with ``host_cidr`` (pyroute2).

    Only what differs is changed, so a TAP an administrator created and configured
    beforehand (``ip tuntap add NAME mode tap user USER``) works without CAP_NET_ADMIN.
    """
    import ipaddress

    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    try:
        with IPRoute() as ipr:
            found = ipr.link_lookup(ifname=name)
            if not found:
                raise PlatformError(f"TAP {name!r} vanished while configuring it")
            index = found[0]
            link = ipr.get_links(index)[0]
            if link.get_attr("IFLA_MTU") != mtu:
                ipr.link("set", index=index, mtu=mtu)
            if host_cidr:
                iface = ipaddress.IPv4Interface(host_cidr)
                present = {(a.get_attr("IFA_ADDRESS"), a["prefixlen"])
                           for a in ipr.get_addr(index=index, family=2)}
                if (str(iface.ip), iface.network.prefixlen) not in present:
                    try:
                        ipr.addr("add", index=index, address=str(iface.ip),
                                 prefixlen=iface.network.prefixlen)
                    except NetlinkError as exc:
                        if exc.code != errno.EEXIST:
                            raise
            if not link["flags"] & 1:  # IFF_UP
                ipr.link("set", index=index, state="up")
    except NetlinkError as exc:
        if exc.code in (errno.EPERM, errno.EACCES):
            raise PlatformError(NEEDS_CAP.format(name=name)) from exc
        raise PlatformError(f"cannot configure TAP {name!r}: {exc}") from exc
