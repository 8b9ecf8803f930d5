"""TAP devices: a ``Netif`` over ``/dev/net/tun``, created and configured with pyroute2.

The TAP is opened with ``IFF_VNET_HDR`` and ``TUNSETOFFLOAD``, so that frames in both
directions carry a virtio-net header and may be large, partially checksummed TCP segments;
reading and writing them is ``fata.platform.fdnetif``'s.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct

from fata.platform import PlatformError
from fata.platform.fdnetif import VNET_HDR_LEN, FdNetif

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
NEEDS_CAP = ("--net direct needs CAP_NET_ADMIN to create and configure the TAP device "
             "(run as root, or create it beforehand with "
             "`ip tuntap add {name} mode tap user $USER`, address and bring it up yourself)")


class TapNetif(FdNetif):
    """A TAP device as seen from user space."""

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
