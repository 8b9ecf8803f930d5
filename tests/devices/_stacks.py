"""Every ``Stack`` implementation, as a (server, client) pair the conformance cases run on.

- ``socket``: the host kernel (two ``SocketStack`` objects, over loopback);
- ``direct-memory``: two of Fata's own stacks joined by an in-memory wire;
- ``direct-tap``: two of Fata's own stacks, each on a TAP device, joined by a Linux bridge
  inside a network namespace made here (root only), so frames cross the kernel;
- ``direct-packet``: two of Fata's own stacks on the two ends of a veth pair through
  ``AF_PACKET`` sockets, opened inside a namespace made here and handed back (root only).

A later platform adds its pair here and the whole suite runs against it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from fata.devices import IPAddress, Stack
from fata.net.ipv4 import Ipv4Config
from fata.net.stack import DirectStack
from fata.platform.memory import MemoryWire
from fata.platform.socket_stack import SocketStack
from fata.platform.unix import UnixConsole

_counter = itertools.count()
HAS_TAP = os.geteuid() == 0 and os.path.exists("/dev/net/tun") and shutil.which("ip") is not None

KINDS = [
    pytest.param("socket", id="socket"),
    pytest.param("direct-memory", id="direct-memory"),
    *(pytest.param(kind, id=kind, marks=[
        pytest.mark.root,
        pytest.mark.skipif(not HAS_TAP, reason="needs root, /dev/net/tun and iproute2 "
                                               "(CI runs these as root)")])
      for kind in ("direct-tap", "direct-packet")),
]
_HANDOVER = """
import socket, sys
from fata.platform.packet import PacketNetif
netif = PacketNetif.open(sys.argv[1])
meta = netif.mac + netif.mtu.to_bytes(4, "big") + bytes([netif.vnet_hdr])
socket.send_fds(socket.socket(fileno=int(sys.argv[2])), [meta], [netif.fd])
"""


def packet_netif_in(ns: str, ifname: str):  # -> PacketNetif
    """A packet socket on ``ifname`` in namespace ``ns``: opened there by a child process
    (a socket stays in the namespace it was made in) and handed back over a Unix socket."""
    from fata.platform.packet import PacketNetif

    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with parent, child:
        done = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", _HANDOVER,
                               ifname, str(child.fileno())], pass_fds=(child.fileno(),),
                              capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"opening {ifname} in {ns} failed: {done.stderr.strip()}")
        meta, fds, _flags, _addr = socket.recv_fds(parent, 64, 1)
    os.set_blocking(fds[0], False)
    return PacketNetif(fds[0], ifname, meta[:6], int.from_bytes(meta[6:10], "big"),
                       bool(meta[10]))


@dataclass
class Pair:
    """The stack under test (``server``, answering on ``address``) and a stack to reach it."""

    server: Stack
    client: Stack
    address: IPAddress


def _sh(*cmd: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr.strip()}")


def _console() -> UnixConsole:
    return UnixConsole("conformance", "error")


@contextlib.asynccontextmanager
async def stack_pair(kind: str) -> AsyncIterator[Pair]:
    """The pair of stacks of ``kind``, closed afterwards."""
    if kind == "socket":
        server, client = SocketStack(_console()), SocketStack(_console())
        try:
            yield Pair(server, client, ipaddress.IPv4Address("127.0.0.1"))
        finally:
            await server.close()
            await client.close()
        return
    if kind == "direct-memory":
        wire = MemoryWire()
        server = DirectStack(wire.a, Ipv4Config.from_text("10.0.0.1/24"), console=_console())
        client = DirectStack(wire.b, Ipv4Config.from_text("10.0.0.2/24"), console=_console())
        server.start()
        client.start()
        try:
            yield Pair(server, client, ipaddress.IPv4Address("10.0.0.1"))
        finally:
            await server.close()
            await client.close()
        return
    assert kind in ("direct-tap", "direct-packet"), kind
    from fata.platform.tap import TapNetif

    tag = f"{os.getpid() % 10000}x{next(_counter)}"
    ns = f"fatadev{tag}"
    subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    _sh("ip", "netns", "add", ns)
    stacks: list[DirectStack] = []
    try:
        if kind == "direct-packet":
            _sh("ip", "-n", ns, "link", "add", "va", "type", "veth", "peer", "name", "vb")
            for end in ("va", "vb"):
                _sh("ip", "-n", ns, "link", "set", end, "up")
        else:
            _sh("ip", "-n", ns, "link", "add", "br0", "type", "bridge")
            _sh("ip", "-n", ns, "link", "set", "br0", "up")
        for i, address in enumerate(("10.239.0.2/24", "10.239.0.3/24")):
            if kind == "direct-packet":
                netif = packet_netif_in(ns, f"v{'ab'[i]}")
            else:
                name = f"fdev{tag}{'ab'[i]}"
                netif = TapNetif.open(name)
                try:
                    _sh("ip", "link", "set", name, "netns", ns)
                    _sh("ip", "-n", ns, "link", "set", name, "master", "br0", "up")
                except BaseException:
                    netif.close()
                    raise
            stack = DirectStack(netif, Ipv4Config.from_text(address), console=_console())
            stack.start()
            stacks.append(stack)
        yield Pair(stacks[0], stacks[1], ipaddress.IPv4Address("10.239.0.2"))
    finally:
        for stack in stacks:
            await stack.close()
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
