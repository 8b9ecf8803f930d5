"""An existing interface as a ``Netif``, through a Linux packet socket (``AF_PACKET``).

``fata run --netif NAME=if:IFNAME`` gives an appliance a port that already exists: one end
of a veth pair in a network namespace, a physical NIC.  The socket is bound to the interface,
promiscuous (a switch's or bridge's port must see every frame), ignores the frames it sent
itself, puts back the VLAN tag the kernel strips from every received frame (it comes as
``PACKET_AUXDATA``), and carries a virtio-net header per frame (``PACKET_VNET_HDR``) so that
frames the host left partially checksummed, or large segments, arrive and leave as on a
TAP.  Reading and writing are ``fata.platform.fdnetif``'s.  Needs CAP_NET_RAW.
"""

from __future__ import annotations

import socket
import struct
from contextlib import suppress
from pathlib import Path

from fata.platform import PlatformError
from fata.platform.fdnetif import FdNetif
from fata.platform.host_interfaces import SIOCGIFHWADDR, SIOCGIFMTU, _ioctl

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_ADD_MEMBERSHIP = 1
PACKET_MR_PROMISC = 1
PACKET_VNET_HDR = 15
PACKET_IGNORE_OUTGOING = 23
PACKET_AUXDATA = 8
NEEDS_CAP = ("--netif ...=if:{name} needs CAP_NET_RAW to open a packet socket on {name} "
             "(run as root, or give the interpreter cap_net_raw)")


class PacketNetif(FdNetif):
    """A packet socket bound to one interface."""

    @classmethod
    def open(cls, name: str, *, vnet_hdr: bool = True) -> PacketNetif:
        """Bind to existing interface ``name``; ``PlatformError`` if it is missing or not ours."""
        try:
            index = socket.if_nametoindex(name)
        except OSError:
            raise PlatformError(f"no network interface {name!r} here") from None
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        except PermissionError:
            raise PlatformError(NEEDS_CAP.format(name=name)) from None
        try:
            if vnet_hdr:
                try:
                    sock.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
                except OSError:
                    vnet_hdr = False  # plain frames then (checksums done by the sender)
            sock.bind((name, ETH_P_ALL))
            with suppress(OSError):  # Linux < 4.20: our own frames also come back; ignored
                sock.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
            sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP,
                            struct.pack("iHH8s", index, PACKET_MR_PROMISC, 0, b""))
            # The kernel takes a received frame's VLAN tag off into the auxiliary data; with
            # it the tag is put back, so the appliance sees the frame as the wire had it.
            auxdata = True
            try:
                sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
            except OSError:
                auxdata = False
            sock.setblocking(False)
            mac = _ioctl(sock, SIOCGIFHWADDR, name)[18:24]
            mtu = struct.unpack_from("i", _ioctl(sock, SIOCGIFMTU, name), 16)[0]
        except OSError as exc:
            sock.close()
            raise PlatformError(f"cannot open interface {name!r}: {exc.strerror}") from None
        netif = cls(sock.detach(), name, mac, mtu, vnet_hdr)
        netif.vlan_auxdata = auxdata
        return netif

    @property
    def link_up(self) -> bool:
        """The interface's operational state, as the kernel reports it."""
        try:
            state = Path(f"/sys/class/net/{self.name}/operstate").read_text().strip()
        except OSError:
            return False
        return state in ("up", "unknown")
