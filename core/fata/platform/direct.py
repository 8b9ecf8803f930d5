"""``--net direct``: Fata's own TCP/IP stack on a TAP device.

``fata run APP --net direct`` with no options creates TAP ``fata0``, gives the host side
10.77.0.1/24 and answers on 10.77.0.2: one command for a newcomer, after which
``ping 10.77.0.2`` works from the host.  Every part can be changed (``--netif``, ``--ipv4``,
``--ipv4-gateway``, ``--dhcp``, ``--host-ipv4``, ``--mtu``).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress

from fata.devices import Console, Stack
from fata.net.ipv4 import Ipv4Config
from fata.net.stack import DirectStack
from fata.platform import PlatformError
from fata.platform.tap import TapNetif, configure_host

DEFAULT_NETIF = "fata0"
DEFAULT_IPV4 = "10.77.0.2/24"
DEFAULT_HOST_IPV4 = "10.77.0.1/24"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``--net direct``."""
    group = parser.add_argument_group("direct network stack (--net direct)")
    group.add_argument("--netif", default=DEFAULT_NETIF, metavar="NAME",
                       help=f"TAP device to use, created if missing (default {DEFAULT_NETIF})")
    group.add_argument("--ipv4", default=None, metavar="ADDR/LEN",
                       help=f"the appliance's address (default {DEFAULT_IPV4} unless --dhcp)")
    group.add_argument("--ipv4-gateway", default=None, metavar="ADDR",
                       help="default gateway for destinations off the subnet")
    group.add_argument("--dhcp", action="store_true",
                       help="get the address from a DHCP server instead")
    group.add_argument("--host-ipv4", default=DEFAULT_HOST_IPV4, metavar="ADDR/LEN|none",
                       help="address given to the host side of the TAP "
                            f"(default {DEFAULT_HOST_IPV4}; 'none' leaves it alone)")
    group.add_argument("--mtu", type=int, default=1500, help="interface MTU (default 1500)")


def _parse(options: argparse.Namespace) -> tuple[Ipv4Config | None, str | None]:
    try:
        config = None
        if not options.dhcp:
            config = Ipv4Config.from_text(options.ipv4 or DEFAULT_IPV4, options.ipv4_gateway)
        elif options.ipv4:
            raise PlatformError("--dhcp and --ipv4 exclude each other: pick one")
        host = options.host_ipv4
        if host and host.lower() == "none":
            host = None
        if host:
            ipaddress.IPv4Interface(host)
    except ValueError as exc:
        raise PlatformError(f"bad address for --net direct: {exc}") from exc
    if not 576 <= options.mtu <= 65535:
        raise PlatformError(f"--mtu {options.mtu} is out of range (576..65535)")
    return config, host


async def open_stack(options: argparse.Namespace, console: Console) -> Stack:
    """Create/configure the TAP, bring the stack up and say where it answers."""
    config, host = _parse(options)
    name = options.netif
    netif = TapNetif.open(name, mtu=options.mtu)
    try:
        # pyroute2 runs its own asyncio loop inside; keep it off ours (which may be uvloop)
        await asyncio.to_thread(configure_host, name, host, options.mtu)
        stack = DirectStack(netif, config, console=console)
        stack.start()
        if options.dhcp:
            console.info(f"direct: {name} up, asking DHCP for an address")
            try:
                await stack.run_dhcp(timeout=60.0)
            except TimeoutError as exc:
                await stack.close()
                raise PlatformError(f"no DHCP answer on {name} within 60 s") from exc
    except BaseException:
        netif.close()
        raise
    offload = "TSO+checksum offload" if netif.tso else "no offload"
    where = ", ".join(stack.ipv4_addresses)
    host_part = f", host side {host}" if host else ""
    console.info(f"direct: appliance answers on {where} via TAP {name}{host_part} "
                 f"(mtu {options.mtu}, {offload})")
    return stack
