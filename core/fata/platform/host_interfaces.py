"""The host's network interfaces and addresses, read from the kernel without pyroute2.

The socket stack is the host kernel's TCP/IP, so its interfaces are the host's.  They are
read with the classic interface ioctls (IPv4 address, netmask, MTU, hardware address) and
``/proc/net/if_inet6`` (IPv6), which are small, always there on Linux, and keep pyroute2
(a large dependency) out of ``--net socket`` images.
"""

from __future__ import annotations

import fcntl
import ipaddress
import socket
import struct
from contextlib import suppress

from fata.devices.stack import Interface, IPInterface

SIOCGIFFLAGS = 0x8913
SIOCGIFADDR = 0x8915
SIOCGIFNETMASK = 0x891B
SIOCGIFMTU = 0x8921
SIOCGIFHWADDR = 0x8927
IFF_UP = 0x1
IF_INET6 = "/proc/net/if_inet6"


def _ioctl(sock: socket.socket, request: int, name: str) -> bytes:
    return fcntl.ioctl(sock.fileno(), request, struct.pack("256s", name.encode()[:15]))


def _ipv6_addresses() -> dict[str, list[IPInterface]]:
    """Per interface name, its IPv6 addresses (``/proc/net/if_inet6`` rows)."""
    out: dict[str, list[IPInterface]] = {}
    with suppress(OSError), open(IF_INET6, encoding="ascii") as rows:
        for row in rows:
            fields = row.split()
            if len(fields) == 6 and int(fields[3], 16) != 0x20:  # link-local: needs a scope
                address = ipaddress.IPv6Address(bytes.fromhex(fields[0]))
                out.setdefault(fields[5], []).append(
                    ipaddress.IPv6Interface(f"{address}/{int(fields[2], 16)}"))
    return out


def host_interfaces() -> list[Interface]:
    """Every interface that is up, in index order (so loopback comes first)."""
    v6 = _ipv6_addresses()
    out: list[Interface] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _index, name in sorted(socket.if_nameindex()):
            try:
                flags = struct.unpack_from("H", _ioctl(sock, SIOCGIFFLAGS, name), 16)[0]
                mtu = struct.unpack_from("i", _ioctl(sock, SIOCGIFMTU, name), 16)[0]
            except OSError:  # gone meanwhile
                continue
            if not flags & IFF_UP:
                continue
            addresses: list[IPInterface] = []
            with suppress(OSError):  # no IPv4 address
                addr = _ioctl(sock, SIOCGIFADDR, name)[20:24]
                mask = _ioctl(sock, SIOCGIFNETMASK, name)[20:24]
                addresses.append(ipaddress.IPv4Interface(
                    (ipaddress.IPv4Address(addr), bin(int.from_bytes(mask, "big")).count("1"))))
            addresses.extend(v6.get(name, ()))
            mac = None
            with suppress(OSError):
                hw = _ioctl(sock, SIOCGIFHWADDR, name)[18:24]
                mac = hw if any(hw) else None
            out.append(Interface(name, mac, mtu, tuple(addresses)))
    return out
