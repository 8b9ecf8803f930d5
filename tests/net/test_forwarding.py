"""A two-interface direct stack routes between two network namespaces.

Fata's stack owns two TAPs, one moved into each namespace, with 10.242.1.1/24 on the left
and 10.242.2.1/24 on the right (MTU 1280 there); the Linux hosts behind them route through
it.  Pings check the TTL decrement, time exceeded for TTL 1, fragmentation needed for DF
packets over the right link's MTU and refragmentation of the others; a TCP transfer checks
bulk forwarding with the hosts' offloads on.
"""

from __future__ import annotations

import asyncio
import os
import re

import pytest
from fata.net.ipv4 import Ipv4Config
from fata.net.stack import DirectStack
from fata.platform.tap import TapNetif

from ._bulk import transfer
from ._netns import needs_tap, sh

pytestmark = [*needs_tap, pytest.mark.tool("ping")]
LEFT_HOST, RIGHT_HOST = "10.242.1.2", "10.242.2.2"
RIGHT_MTU = 1280
BULK = 20 * 1024 * 1024

class Lab:
    def __init__(self) -> None:
        tag = os.getpid() % 100000
        self.left, self.right = f"ffwl{tag}", f"ffwr{tag}"

    async def run(self, ns: str, *cmd: str, timeout: float = 90.0) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", ns, *cmd, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        return proc.returncode or 0, out.decode(errors="replace")


@pytest.fixture
def lab():
    lab = Lab()
    for ns in (lab.left, lab.right):
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
    yield lab
    for ns in (lab.left, lab.right):
        os.system(f"ip netns del {ns} 2>/dev/null")


async def _router(lab: Lab) -> DirectStack:
    tag = os.getpid() % 10000
    ports = []
    for ns, name, host, mtu in ((lab.left, f"ftl{tag}", LEFT_HOST, 1500),
                                (lab.right, f"ftr{tag}", RIGHT_HOST, RIGHT_MTU)):
        netif = TapNetif.open(name, mtu=mtu)
        ports.append(netif)
        sh("ip", "link", "set", name, "netns", ns)
        sh("ip", "-n", ns, "link", "set", name, "mtu", str(mtu), "up")
        sh("ip", "-n", ns, "addr", "add", f"{host}/24", "dev", name)
        sh("ip", "-n", ns, "route", "add", "default", "via", host.rsplit(".", 1)[0] + ".1")
    stack = DirectStack(ports[0], Ipv4Config.from_text("10.242.1.1/24"))
    stack.add_interface(ports[1], Ipv4Config.from_text("10.242.2.1/24"))
    stack.forwarding = True
    stack.start()
    return stack


def test_routes_between_two_namespaces(lab: Lab) -> None:
    async def main() -> None:
        stack = await _router(lab)
        try:
            rc, out = await lab.run(lab.left, "ping", "-c", "3", "-i", "0.2", "-W", "2",
                                    RIGHT_HOST)
            assert rc == 0 and " 0% packet loss" in out, out
            assert re.search(r"ttl=63\b", out), out  # one hop: 64 - 1
            rc, out = await lab.run(lab.left, "ping", "-c", "1", "-W", "2", "-t", "1",
                                    RIGHT_HOST)
            assert "From 10.242.1.1" in out and "Time to live exceeded" in out, out
            # before the left host learns the path MTU: its 1500-byte fragments are cut again
            rc, out = await lab.run(lab.left, "ping", "-c", "2", "-i", "0.2", "-W", "2",
                                    "-M", "dont", "-s", "3000", RIGHT_HOST)
            assert rc == 0 and " 0% packet loss" in out, out
            rc, out = await lab.run(lab.left, "ping", "-c", "1", "-W", "2", "-M", "do", "-s",
                                    "1400", RIGHT_HOST)
            assert "Frag needed" in out and f"mtu = {RIGHT_MTU}" in out, out
            stats = stack.stats()
            assert stats["ipv4_forwarded"] >= 3 and stats["ipv4_ttl_exceeded"] == 1
            assert stats["ipv4_frag_needed_sent"] == 1 and stats["ipv4_fragmented"] >= 2

            await transfer(lab.right, RIGHT_HOST, lab.left, BULK)
        finally:
            await stack.close()

    asyncio.run(main())
