"""``netif()`` ports end to end: a two-port appliance joins two network namespaces.

The wire test appliance (``wire_appliance/``) runs under ``fata run`` inside a namespace of
its own, its ports given on the command line: both existing veth ends through ``AF_PACKET``
(``--netif NAME=if:IF``), or one of them a TAP (``--netif NAME=tap:IF``).  Linux hosts on
either side ping each other and move 20 MB over TCP through it, with the kernel's offloads
on (partial checksums, TSO super-segments), which the ports must finish before forwarding.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from net._bulk import transfer

pytestmark = [
    pytest.mark.root, pytest.mark.tool("ip", "ping"),
    pytest.mark.skipif(not os.path.exists("/dev/net/tun"), reason="needs /dev/net/tun"),
]
HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
APPLIANCE = HERE / "wire_appliance"
ROUTER = HERE / "router_appliance"
LEFT_IP, RIGHT_IP = "10.241.0.1", "10.241.0.2"
ROUTED_LEFT, ROUTED_RIGHT = "10.241.1.2", "10.241.2.2"
BULK = 20 * 1024 * 1024

def sh(*cmd: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr.strip()}")


async def run_in(ns: str, *cmd: str, timeout: float = 90.0) -> str:
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", ns, *cmd, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode == 0, out.decode(errors="replace")
    return out.decode()


@contextlib.asynccontextmanager
async def running(ns: str, appliance: Path, *args: str, ready: str) -> AsyncIterator[list[str]]:
    """``fata run APPLIANCE ARGS`` inside ``ns``, once its log says ``ready``; yields the log
    lines so far, and checks at the end that a SIGTERM stopped it cleanly (the rest of the
    log appended)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO / "core"), os.environ.get("PYTHONPATH", "")]))
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", ns, sys.executable, "-m", "fata", "run", str(appliance), *args,
        stderr=asyncio.subprocess.PIPE, env=env, cwd=str(REPO))
    assert proc.stderr is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(120):
            while not any(ready in line for line in lines):
                line = (await proc.stderr.readline()).decode()
                assert line, "the appliance exited: " + "".join(lines)
                lines.append(line)
        yield lines
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        _, rest = await asyncio.wait_for(proc.communicate(), 30)
        lines.append(rest.decode())
    assert proc.returncode == 0, "".join(lines)


@pytest.fixture
def lab():
    tag = os.getpid() % 100000
    names = {"left": f"fwl{tag}", "right": f"fwr{tag}", "mid": f"fwm{tag}"}
    for ns in names.values():
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
    left, right, mid = names["left"], names["right"], names["mid"]
    sh("ip", "-n", left, "link", "add", "l0", "type", "veth", "peer", "name", "l1", "netns", mid)
    sh("ip", "-n", right, "link", "add", "r0", "type", "veth", "peer", "name", "r1", "netns",
       mid)
    sh("ip", "-n", left, "addr", "add", f"{LEFT_IP}/24", "dev", "l0")
    sh("ip", "-n", right, "addr", "add", f"{RIGHT_IP}/24", "dev", "r0")
    for ns, dev in ((left, "l0"), (right, "r0"), (mid, "l1"), (mid, "r1")):
        sh("ip", "-n", ns, "link", "set", dev, "up")
    yield names
    for ns in names.values():
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


@pytest.mark.parametrize("right_port", ["if", "tap"])
def test_two_ports_join_two_namespaces(lab: dict[str, str], right_port: str) -> None:
    mid = lab["mid"]
    if right_port == "tap":  # the TAP is bridged to r1, so the right host is behind it
        sh("ip", "-n", mid, "tuntap", "add", "ftr", "mode", "tap")
        sh("ip", "-n", mid, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", mid, "link", "set", "r1", "master", "br0")
        sh("ip", "-n", mid, "link", "set", "ftr", "master", "br0")
        sh("ip", "-n", mid, "link", "set", "br0", "up")
        right = "right=tap:ftr"
    else:
        right = "right=if:r1"

    async def main() -> None:
        async with running(mid, APPLIANCE, "--netif", "left=if:l1", "--netif", right,
                           ready="wire up") as lines:
            assert "netif left: l1 (PacketNetif" in "".join(lines)
            out = await run_in(lab["left"], "ping", "-c", "3", "-i", "0.2", "-W", "2",
                               RIGHT_IP)
            assert " 0% packet loss" in out, out
            await transfer(lab["left"], LEFT_IP, lab["right"], BULK)
        assert "wire down:" in lines[-1], lines[-1]

    asyncio.run(main())


def test_a_stack_over_two_ports_routes_between_them(lab: dict[str, str]) -> None:
    """``stack(netifs=["left", "right"])`` under ``fata run``: two addresses, forwarding."""
    left, right, mid = lab["left"], lab["right"], lab["mid"]
    for ns, dev, old, new in ((left, "l0", LEFT_IP, ROUTED_LEFT),
                              (right, "r0", RIGHT_IP, ROUTED_RIGHT)):
        sh("ip", "-n", ns, "addr", "del", f"{old}/24", "dev", dev)
        sh("ip", "-n", ns, "addr", "add", f"{new}/24", "dev", dev)
        sh("ip", "-n", ns, "route", "add", "default", "via", new.rsplit(".", 1)[0] + ".1")

    async def main() -> None:
        async with running(mid, ROUTER, "--net", "direct", "--netif", "left=if:l1",
                           "--netif", "right=if:r1", "--ipv4", "left=10.241.1.1/24",
                           "--ipv4", "right=10.241.2.1/24", ready="routing between") as lines:
            assert "l1 10.241.1.1/24, r1 10.241.2.1/24" in lines[-1], lines[-1]
            out = await run_in(left, "ping", "-c", "2", "-i", "0.2", "-W", "2", "10.241.1.1")
            assert " 0% packet loss" in out, out  # the router itself
            out = await run_in(left, "ping", "-c", "3", "-i", "0.2", "-W", "2", ROUTED_RIGHT)
            assert " 0% packet loss" in out and "ttl=63" in out, out
            await transfer(left, ROUTED_LEFT, right, BULK)
        assert "forwarded" in lines[-1] and "forwarded 0 packets" not in lines[-1], lines[-1]

    asyncio.run(main())
