"""Network-namespace plumbing for the TAP tests.

Each test module gets its own namespaces with unique names.  The stack under test runs in
the pytest process: its TAP is created in the root namespace with a unique name and
moved at once into a namespace created here, where Linux plays the peer.  The TAP fd stays
valid across the move, so traffic only ever flows between our stack and namespaces this
module created; closing the fd deletes the device, and the namespaces are deleted at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest
from fata.net.ipv4 import Ipv4Config
from fata.net.stack import DirectStack
from fata.net.tcp import TcpConfig
from fata.platform.tap import TapNetif

# Root (the ``root`` marker), a TUN/TAP device node (missing only in a container started
# without it) and iproute2's ip.
needs_tun = pytest.mark.skipif(not os.path.exists("/dev/net/tun"),
                               reason="needs /dev/net/tun (a container without the TUN device)")
needs_tap = [pytest.mark.root, needs_tun, pytest.mark.tool("ip")]

_counter = itertools.count()
PYTHON = sys.executable


def sh(*cmd: str) -> None:
    """Run a setup command; failures raise with the command's output."""
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr.strip()}")


class Lab:
    """Namespaces for one test module: ``host`` (the Linux peer, on the TAP's subnet) and,
    when ``routed``, a ``router`` namespace between them (TAP there, veth to ``host``)."""

    def __init__(self, tag: str, routed: bool = False, bridged: bool = False) -> None:
        base = f"fata{tag}{os.getpid() % 100000}"
        self.host = f"{base}h"
        self.router = f"{base}r" if routed or bridged else self.host
        self.routed = routed
        self.bridged = bridged
        self.app_ip = "10.231.0.2"
        self.gateway = "10.231.0.1"
        self.host_ip = "10.232.0.2" if routed else "10.231.0.1"

    def create(self) -> None:
        """Make the namespaces (and the routed path)."""
        self.destroy()
        sh("ip", "netns", "add", self.host)
        sh("ip", "-n", self.host, "link", "set", "lo", "up")
        if self.routed or self.bridged:
            r, h = self.router, self.host
            sh("ip", "netns", "add", r)
            sh("ip", "-n", r, "link", "set", "lo", "up")
            sh("ip", "-n", r, "link", "add", "vr", "type", "veth", "peer", "name", "vh",
               "netns", h)
            sh("ip", "-n", r, "link", "set", "vr", "up")
            sh("ip", "-n", h, "link", "set", "vh", "up")
        if self.routed:
            sh("ip", "-n", r, "addr", "add", "10.232.0.1/24", "dev", "vr")
            sh("ip", "-n", h, "addr", "add", "10.232.0.2/24", "dev", "vh")
            sh("ip", "-n", h, "route", "add", "default", "via", "10.232.0.1")
            sh("ip", "netns", "exec", r, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        if self.bridged:  # the host sits on the TAP's subnet, behind a user-space bridge
            sh("ip", "-n", h, "addr", "add", f"{self.gateway}/24", "dev", "vh")

    def destroy(self) -> None:
        """Delete the namespaces (their devices go with them)."""
        for ns in {self.host, self.router}:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)

    @contextlib.asynccontextmanager
    async def stack(self, *, mtu: int = 1500, offload: bool = True,
                    tcp_config: TcpConfig | None = None) -> AsyncIterator[DirectStack]:
        """A ``DirectStack`` on a fresh TAP whose other side is in ``router``."""
        name = f"ftap{os.getpid() % 10000}x{next(_counter)}"
        netif = TapNetif.open(name, mtu=mtu, vnet_hdr=offload)
        self.tap_name = name
        try:
            sh("ip", "link", "set", name, "netns", self.router)
            if not self.bridged:
                sh("ip", "-n", self.router, "addr", "add", f"{self.gateway}/24", "dev", name)
            sh("ip", "-n", self.router, "link", "set", name, "mtu", str(mtu), "up")
        except BaseException:
            netif.close()
            raise
        gateway = self.gateway if self.routed else None
        stack = DirectStack(netif, Ipv4Config.from_text(f"{self.app_ip}/24", gateway),
                            tcp_config=tcp_config)
        stack.start()
        try:
            yield stack
        finally:
            await stack.close()

    async def run(self, *cmd: str, timeout: float = 60.0, ns: str | None = None,
                  stdin: bytes | None = None) -> tuple[int, str]:
        """Run ``cmd`` in the host namespace without blocking the event loop."""
        proc = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", ns or self.host, *cmd,
            stdin=asyncio.subprocess.PIPE if stdin is not None else None,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        try:
            out, _ = await asyncio.wait_for(proc.communicate(stdin), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        return proc.returncode or 0, out.decode(errors="replace")

    async def python(self, code: str, *args: str, timeout: float = 60.0) -> str:
        """Run a Python peer in the host namespace; its failure fails the test."""
        rc, out = await self.run(PYTHON, "-c", code, *args, timeout=timeout)
        assert rc == 0, out
        return out
