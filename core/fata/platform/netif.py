"""``netif()`` on ``unix``: a TAP device Fata creates, or an existing interface.

``fata run`` chooses what each of an appliance's ports is, by the port's name:

- ``--netif NAME=tap:IFNAME``: TAP ``IFNAME``, created if missing and brought up (with no
  address: the host side is a plain link; CAP_NET_ADMIN unless an administrator made it);
- ``--netif NAME=if:IFNAME``: the existing interface ``IFNAME`` through a packet socket (a
  veth end in a network namespace; CAP_NET_RAW);
- ``--netif NAME=xen:DEVID``: the guest's vif ``DEVID`` on the Xen platform (netfront,
  ``fata.platform.xen_netfront``: only in a guest domain, needing no privilege at all);
- ``--netif IFNAME`` (no ``=``): the short form, the direct stack's own interface, a TAP.

A port not named on the command line is TAP ``fata-NAME``.  The option is shared with
``--net direct`` (whose stack stands on a netif too), so it is added once, here.
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass

from fata.devices.netif import Netif
from fata.platform import PlatformError
from fata.platform.registry import DeviceContext

KINDS = ("tap", "if", "xen")
IFNAMSIZ = 15
_ADDED = "_fata_netif_option"


@dataclass(frozen=True)
class NetifChoice:
    """What one port is: ``kind`` ``tap``, ``if`` or ``xen``, and the host interface's
    name (for ``xen``, the vif's number)."""

    kind: str
    ifname: str


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--netif``, repeatable; added once however many providers ask for it."""
    if getattr(parser, _ADDED, False):
        return
    setattr(parser, _ADDED, True)
    parser.add_argument(
        "--netif", action="append", default=[], metavar="NAME=tap:IF|NAME=if:IF|NAME=xen:N|IF",
        help="what a port is: a TAP Fata creates (tap:IF), an existing interface (if:IF) or, "
             "in a Xen guest, its vif N (xen:N); a bare IF is the TAP of the direct stack's "
             "own interface; repeatable")


def netif_choices(options: argparse.Namespace) -> tuple[str | None, dict[str, NetifChoice]]:
    """The short form (or None) and the choice for every named port."""
    short: str | None = None
    named: dict[str, NetifChoice] = {}
    values = getattr(options, "netif", None) or []
    if isinstance(values, str):
        values = [values]
    for text in values:
        name, sep, rest = text.partition("=")
        if not sep:
            short = _ifname(text, text)
            continue
        kind, colon, ifname = rest.partition(":")
        if not name or not colon or kind not in KINDS:
            raise PlatformError(f"--netif {text!r}: expected NAME=tap:IFNAME, NAME=if:IFNAME "
                                "or NAME=xen:DEVID")
        if name in named:
            raise PlatformError(f"--netif: port {name!r} is given twice")
        named[name] = NetifChoice(kind, _ifname(text, ifname))
    return short, named


def _ifname(text: str, ifname: str) -> str:
    if not ifname or len(ifname) > IFNAMSIZ or "/" in ifname or " " in ifname:
        raise PlatformError(f"--netif {text!r}: {ifname!r} is not an interface name "
                            f"(1 to {IFNAMSIZ} characters)")
    return ifname


def default_choice(port: str) -> NetifChoice:
    """A port the command line does not name: TAP ``fata-PORT``."""
    return NetifChoice("tap", f"fata-{port}"[:IFNAMSIZ])


async def open_choice(choice: NetifChoice, *, mtu: int | None = None,
                      host_cidr: str | None = None) -> Netif:
    """Open the port: a TAP created and brought up (its host side given ``host_cidr``), or
    a packet socket on the existing interface."""
    if choice.kind == "if":
        from fata.platform.packet import PacketNetif

        return PacketNetif.open(choice.ifname)
    if choice.kind == "xen":
        from fata.platform.xen_netfront import open_netfront

        if not choice.ifname.isdigit():
            raise PlatformError(f"--netif ...=xen:{choice.ifname}: a vif is a number")
        return await open_netfront(int(choice.ifname))
    from fata.platform.tap import TapNetif, configure_host

    netif = TapNetif.open(choice.ifname, mtu=mtu or 1500)
    try:
        # pyroute2 runs its own asyncio loop inside; keep it off ours (which may be uvloop)
        await asyncio.to_thread(configure_host, choice.ifname, host_cidr, netif.mtu)
    except BaseException:
        netif.close()
        raise
    return netif


async def open_netif(name: str, spec: dict, ctx: DeviceContext) -> Netif:
    """The port the command line chose for this device's name (``fata-NAME`` TAP if none)."""
    port = spec.get("name", name)
    _short, named = netif_choices(ctx.options)
    netif = await open_choice(named.get(port) or default_choice(port))
    ctx.console.info(f"netif {port}: {netif.name} ({type(netif).__name__}, mtu {netif.mtu})")
    return netif
