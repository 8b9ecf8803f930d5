"""``--net direct``: Fata's own TCP/IP stack on a TAP device or an existing interface.

``fata run APP --net direct`` with no options creates TAP ``fata0``, gives the host side
10.77.0.1/24 and answers on 10.77.0.2: one command for a newcomer, after which
``ping 10.77.0.2`` works from the host.  Every part can be changed (``--netif``, ``--ipv4``,
``--ipv4-gateway``, ``--dhcp``, ``--host-ipv4``, ``--mtu``).  The stack's interface is, in
order: the ``netif()`` device its config names (``stack(netifs=[...])``), the port the
command line names after the stack device (``--netif stack=if:veth0``), the short form
``--netif IFNAME`` (a TAP), or TAP ``fata0``.
"""

from __future__ import annotations

import argparse
import ipaddress

from fata.devices import Stack
from fata.net.ipv4 import Ipv4Config
from fata.net.stack import DirectStack
from fata.platform import PlatformError
from fata.platform import netif as netif_platform
from fata.platform.registry import DeviceContext

DEFAULT_NETIF = "fata0"
DEFAULT_IPV4 = "10.77.0.2/24"
DEFAULT_HOST_IPV4 = "10.77.0.1/24"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``--net direct``."""
    netif_platform.add_arguments(parser)
    group = parser.add_argument_group("direct network stack (--net direct)")
    group.add_argument("--ipv4", action="append", default=[], metavar="[NETIF=]ADDR/LEN",
                       help=f"the appliance's address (default {DEFAULT_IPV4} unless --dhcp); "
                            "NETIF= gives it to that netif() port of a stack over several")
    group.add_argument("--ipv4-gateway", default=None, metavar="ADDR",
                       help="default gateway for destinations off the subnet")
    group.add_argument("--dhcp", action="store_true",
                       help="get the address from a DHCP server instead")
    group.add_argument("--host-ipv4", default=DEFAULT_HOST_IPV4, metavar="ADDR/LEN|none",
                       help="address given to the host side of the TAP "
                            f"(default {DEFAULT_HOST_IPV4}; 'none' leaves it alone)")
    group.add_argument("--mtu", type=int, default=1500, help="interface MTU (default 1500)")
    group.add_argument("--tcp-congestion", choices=("newreno", "cubic"), default="newreno",
                       help="TCP congestion control (default newreno; cubic as Linux runs)")


def _split_ipv4(options: argparse.Namespace) -> tuple[str | None, dict[str, str]]:
    """``--ipv4`` values: the unnamed one (the first interface's) and those per port."""
    values = options.ipv4 if isinstance(options.ipv4, list) else [options.ipv4] \
        if options.ipv4 else []
    plain: str | None = None
    named: dict[str, str] = {}
    for value in values:
        port, sep, cidr = value.rpartition("=")
        if sep:
            named[port] = cidr
        elif plain is not None:
            raise PlatformError("--ipv4 given twice without NETIF=: name the port of each")
        else:
            plain = cidr
    return plain, named


def _config(cidr: str, gateway: str | None) -> Ipv4Config:
    try:
        config = Ipv4Config.from_text(cidr)
        if gateway and config.on_link(ipaddress.IPv4Address(gateway).packed):
            config.gateway = ipaddress.IPv4Address(gateway).packed
    except ValueError as exc:
        raise PlatformError(f"bad address for --net direct: {exc}") from exc
    return config


def _parse(options: argparse.Namespace) -> tuple[Ipv4Config | None, str | None]:
    try:
        config = None
        plain, _named = _split_ipv4(options)
        if not options.dhcp:
            config = Ipv4Config.from_text(plain or DEFAULT_IPV4, options.ipv4_gateway)
        elif plain:
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


async def open_stack(name: str, spec: dict, ctx: DeviceContext) -> Stack:
    """Open the interface, bring the stack up and say where it answers."""
    options, console = ctx.options, ctx.console
    config, host = _parse(options)
    declared = spec.get("netifs") or []
    _plain, per_port = _split_ipv4(options)
    more: list[tuple[object, Ipv4Config | None]] = []
    if declared:
        ports = [ctx.specs[d].get("name", d) for d in declared]
        unknown = set(per_port) - set(ports)
        if unknown:
            raise PlatformError(f"--ipv4 {sorted(unknown)[0]}=...: the stack has no port of "
                                f"that name (its ports: {', '.join(ports)})")
        if ports[0] in per_port and not options.dhcp:
            config = _config(per_port[ports[0]], options.ipv4_gateway)
        netif = ctx.devices[declared[0]]
        more = [(ctx.devices[d], _config(per_port[p], options.ipv4_gateway)
                 if p in per_port else None) for d, p in zip(declared[1:], ports[1:],
                                                             strict=True)]
        host = None
    else:
        short, named = netif_platform.netif_choices(options)
        choice = named.get(name) or netif_platform.NetifChoice("tap", short or DEFAULT_NETIF)
        if choice.kind != "tap":
            host = None  # an existing interface's far side is not ours to configure
        netif = await netif_platform.open_choice(choice, mtu=options.mtu, host_cidr=host)
    iface = netif.name
    try:
        stack = DirectStack(netif, config, console=console, rand=ctx.random.bytes,
                            congestion=getattr(options, "tcp_congestion", "newreno"))
        for other, other_config in more:
            stack.add_interface(other, other_config)  # type: ignore[arg-type]
        stack.start()
        if options.dhcp:
            console.info(f"direct: {iface} up, asking DHCP for an address")
            try:
                await stack.run_dhcp(timeout=60.0)
            except TimeoutError as exc:
                await stack.close()
                raise PlatformError(f"no DHCP answer on {iface} within 60 s") from exc
    except BaseException:
        netif.close()
        raise
    offload = "TSO+checksum offload" if netif.tso else \
        "checksum offload" if netif.csum_offload else "no offload"
    where = ", ".join(str(a) for a in stack.addresses)
    host_part = f", host side {host}" if host else ""
    what = "TAP" if type(netif).__name__ == "TapNetif" else "interface"
    console.info(f"direct: appliance answers on {where} via {what} {iface}{host_part} "
                 f"(mtu {netif.mtu}, {offload})")
    return stack
