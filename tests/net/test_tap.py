"""Fata's stack on a TAP device against Linux in a network namespace."""

from __future__ import annotations

import asyncio
import re

import pytest

from ._netns import PYTHON, Lab, needs_tap
from ._services import PEER_BULK, PEER_CONCURRENT, serve_all, until

pytestmark = needs_tap
BULK = 50 * 1024 * 1024


@pytest.fixture(scope="module")
def lab():
    lab = Lab("tap")
    lab.create()
    yield lab
    lab.destroy()


def run(coro):
    return asyncio.run(coro)


@pytest.mark.tool("ping")
@pytest.mark.parametrize("size", [56, 1472, 4000])
def test_ping(lab: Lab, size: int) -> None:
    async def main() -> None:
        async with lab.stack() as stack:
            rc, out = await lab.run("ping", "-c", "3", "-i", "0.2", "-W", "2", "-s", str(size),
                                    "-M", "do" if size <= 1472 else "dont", lab.app_ip)
            assert rc == 0, out
            assert " 0% packet loss" in out, out
            assert stack.stats().get("icmp_echo_replies", 0) >= 3
            if size > 1472:
                assert stack.stats().get("reasm_reassembled", 0) >= 3
                assert stack.stats().get("ipv4_fragmented", 0) >= 3
    run(main())


def test_udp_echo_and_port_unreachable(lab: Lab) -> None:
    peer = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
for size in (1, 512, 1472, 8000):
    s.sendto(b"x" * size, (sys.argv[1], 7))
    data, addr = s.recvfrom(65535)
    assert data == b"x" * size and addr == (sys.argv[1], 7), (size, len(data), addr)
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
c.settimeout(3)
c.connect((sys.argv[1], 9999))
c.send(b"anyone?")
try:
    c.recv(100)
    print("no error")
except ConnectionRefusedError:
    print("refused")
"""

    async def main() -> None:
        async with lab.stack() as stack:
            await serve_all(stack)
            out = await lab.python(peer, lab.app_ip)
            assert out.strip() == "refused"
            assert stack.stats()["icmp_unreachable_sent"] == 1
            assert stack.stats()["udp_closed_port"] == 1
    run(main())


UDP_BURST = r"""
import select, socket, sys
host, rounds = sys.argv[1], int(sys.argv[2])
socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(4)]
for s in socks:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.sendto(b"hello", (host, 7))  # first contact: ARP on both sides before the bursts
    assert select.select([s], [], [], 3)[0] and s.recv(100) == b"hello"
    s.setblocking(False)
got = 0
for r in range(rounds):
    sent = {}
    for i in range(64):  # a burst the stack reads as one batch, from four ports
        s = socks[i % 4]
        data = b"%d-%d-" % (r, i) + b"x" * (i * 7 % 300)
        s.sendto(data, (host, 7))
        sent.setdefault(s, []).append(data)
    for s, want in sent.items():
        have = []
        while len(have) < len(want):
            if not select.select([s], [], [], 3)[0]:
                sys.exit(f"round {r}: {len(have)} of {len(want)} echoes")
            data, addr = s.recvfrom(65535)
            assert addr == (host, 7), addr
            have.append(data)
        assert have == want, (r, [h[:6] for h in have], [w[:6] for w in want])  # all back, intact, in order
        got += len(have)
print(got)
"""


@pytest.mark.parametrize("with_c", [True, False], ids=["c-batches", "python-batches"])
def test_udp_bursts_come_back_intact_and_in_order(lab: Lab, monkeypatch, with_c: bool) -> None:
    """Bursts of datagrams read as batches, with the C module and with its Python stand-in."""
    from fata.platform import fdnetif as tap

    if not with_c:
        monkeypatch.setattr(tap, "_frames", None)
    elif tap._frames is None:
        pytest.skip("fata.platform._frames was not built (test_frames.py says why)")

    async def main() -> None:
        async with lab.stack() as stack:
            await serve_all(stack)
            out = await lab.python(UDP_BURST, lab.app_ip, "50")
            assert int(out) == 50 * 64
            assert stack.netif.rx_frames >= 50 * 64  # type: ignore[attr-defined]
            assert stack.stats().get("udp_handler_errors", 0) == 0
    run(main())


def test_tcp_rst_from_closed_port(lab: Lab) -> None:
    peer = r"""
import socket, sys
try:
    socket.create_connection((sys.argv[1], 4444), timeout=3)
    print("connected")
except ConnectionRefusedError:
    print("refused")
"""

    async def main() -> None:
        async with lab.stack() as stack:
            out = await lab.python(peer, lab.app_ip)
            assert out.strip() == "refused"
            assert stack.stats()["tcp_resets_sent"] >= 1
    run(main())


def test_bulk_50mb_each_way(lab: Lab) -> None:
    async def main() -> None:
        async with lab.stack() as stack:
            await serve_all(stack)
            up = await lab.python(PEER_BULK, "up", lab.app_ip, str(BULK), "1", timeout=120)
            down = await lab.python(PEER_BULK, "down", lab.app_ip, str(BULK), "2", timeout=120)
            ok_up, mbit_up, _ = up.split()
            ok_down, mbit_down, _ = down.split()
            print(f"50 MB up {float(mbit_up):.0f} Mbit/s, down {float(mbit_down):.0f} Mbit/s")
            assert ok_up == "True" and ok_down == "True", (up, down)
            assert stack.stats().get("internal_errors", 0) == 0
    run(main())


def test_bulk_without_offload(lab: Lab) -> None:
    """Plain frames: software checksums, MSS-sized segments, no vnet header."""
    async def main() -> None:
        async with lab.stack(offload=False) as stack:
            assert not stack.netif.tso
            await serve_all(stack)
            size = 8 * 1024 * 1024
            up = await lab.python(PEER_BULK, "up", lab.app_ip, str(size), "3")
            down = await lab.python(PEER_BULK, "down", lab.app_ip, str(size), "4")
            assert up.split()[0] == "True" and down.split()[0] == "True", (up, down)
    run(main())


def test_200_concurrent_connections(lab: Lab) -> None:
    async def main() -> None:
        async with lab.stack() as stack:
            await serve_all(stack)
            out = await lab.python(PEER_CONCURRENT, lab.app_ip, "200")
            assert out.strip() == "200"
            # the peer has closed all 200: each of ours follows once its FIN has arrived
            await until(lambda: not any(c.state.name == "ESTABLISHED"
                                        for c in stack.tcp.conns.values()),
                        step=0.01, what="every connection past ESTABLISHED")
    run(main())


def test_ping_from_stack_side_arp_resolution(lab: Lab) -> None:
    """The stack resolves the host's MAC itself (ARP request/reply) to answer a TCP peer."""
    async def main() -> None:
        async with lab.stack() as stack:
            await serve_all(stack)
            flow_out = await lab.python(
                "import socket,sys;c=socket.create_connection((sys.argv[1],7));"
                "c.sendall(b'ping');print(c.recv(10).decode())", lab.app_ip)
            assert flow_out.strip() == "ping"
            assert stack.arp.cache, "the stack learnt the host's MAC"
            assert re.search(r"replies_sent|requests_sent", " ".join(stack.stats()))
    run(main())


def test_stack_connects_out_to_linux(lab: Lab) -> None:
    """Active open from the stack to a Linux listener, data both ways."""
    server = r"""
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 7777)); s.listen(1); print("ready", flush=True)
c, _ = s.accept()
data = b""
while not data.endswith(b"\n"):
    data += c.recv(100)
c.sendall(data.upper()); c.close()
"""

    async def main() -> None:
        async with lab.stack() as stack:
            proc = await asyncio.create_subprocess_exec(
                "ip", "netns", "exec", lab.host, PYTHON, "-c", server,
                stdout=asyncio.subprocess.PIPE)
            assert proc.stdout is not None
            assert (await proc.stdout.readline()).strip() == b"ready"
            flow = await stack.tcp_connect(lab.host_ip, 7777, timeout=5)
            await flow.write(b"hello linux\n")
            reply = b""
            while True:
                data = await flow.read()
                if not data:
                    break
                reply += data
            await flow.close()
            assert reply == b"HELLO LINUX\n"
            await proc.wait()
            with pytest.raises(ConnectionRefusedError):
                await stack.tcp_connect(lab.host_ip, 7778, timeout=5)
    run(main())


@pytest.mark.tool("ping")
def test_routed_peer_through_default_gateway() -> None:
    """A Linux host off the appliance's subnet, reached through its default gateway."""
    lab = Lab("rt", routed=True)
    lab.create()
    try:
        async def main() -> None:
            async with lab.stack() as stack:
                await serve_all(stack)
                rc, out = await lab.run("ping", "-c", "2", "-i", "0.2", "-W", "2", lab.app_ip)
                assert rc == 0, out
                out = await lab.python(PEER_CONCURRENT, lab.app_ip, "5")
                assert out.strip() == "5"
                assert lab.host_ip == "10.232.0.2"  # not on 10.231.0.0/24: via the gateway
                assert list(stack.arp.cache) == [bytes([10, 231, 0, 1])]
        run(main())
    finally:
        lab.destroy()
