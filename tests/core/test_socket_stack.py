"""The host-socket stack, exercised with plain Python sockets as the peer."""

from __future__ import annotations

import asyncio
import inspect
import os
import select
import shutil
import socket
import struct
import subprocess
import sys
import time

import pytest
from fata.devices import AddressInUse, Flow, ReplyCache, sockaddr
from fata.platform.socket_stack import Batch, SocketStack
from fata.platform.unix import UnixConsole
from net._services import until


def run(coro):
    return asyncio.run(coro)


# Waiting for datagrams on a condition, not a guess.  ``Batch.recv`` never waits, and a datagram sent
# over loopback is in the receiver's queue when ``sendto`` returns only while the kernel
# runs its softirq work at once; under load it defers it (ksoftirqd), and a test that reads
# right after sending sees a short batch.  So tests wait until the receive queue holds what
# was sent: each queued datagram charges its buffer's true size to the queue's memory
# (SO_MEMINFO), which one calibration datagram of each size measures.
SO_MEMINFO = 55  # <asm-generic/socket.h>; the socket module does not name it
_TRUESIZE: dict[tuple, int] = {}


def queue_memory(sock: socket.socket) -> int:
    """SK_MEMINFO_RMEM_ALLOC: the bytes held by the datagrams in the receive queue."""
    return struct.unpack("9I", sock.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, 36))[0]


def _truesize(family: int, host: str, size: int) -> int:
    key = (family, host, size)
    if key not in _TRUESIZE:
        with socket.socket(family, socket.SOCK_DGRAM) as rx, \
                socket.socket(family, socket.SOCK_DGRAM) as tx:
            rx.bind((host, 0))
            tx.sendto(bytes(size), rx.getsockname())
            if not select.select([rx], [], [], 5)[0]:
                raise TimeoutError("a calibration datagram did not arrive")
            _TRUESIZE[key] = queue_memory(rx)
    return _TRUESIZE[key]


def wait_queued(sock: socket.socket, sizes: list[int], timeout: float = 5.0) -> None:
    """Wait until datagrams of ``sizes`` bytes, sent to ``sock`` from this host, all wait
    in its receive queue."""
    host = sock.getsockname()[0]
    want = sum(_truesize(sock.family, host, n) for n in sizes)
    deadline = time.monotonic() + timeout
    while queue_memory(sock) < want:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(sizes)} datagrams not queued within {timeout} s")
        time.sleep(0.001)


# the same, for a subprocess (GSO_ECHO)
QUEUE_WAIT = "import select, socket, struct, time\n" + "".join(
    inspect.getsource(obj) for obj in (queue_memory, _truesize, wait_queued)
) + f"SO_MEMINFO = {SO_MEMINFO}\n_TRUESIZE = {{}}\n"


def sizes(*payloads: bytes) -> list[int]:
    return [len(p) for p in payloads]


async def received_before_marker(client: socket.socket) -> list[bytes]:
    """What ``client`` has been sent so far: a marker datagram sent to it now, after the
    sends the test waited for, is the next one it reads once those are read."""
    loop = asyncio.get_running_loop()
    marker = b"--marker--"
    with socket.socket(client.family, socket.SOCK_DGRAM) as sender:
        sender.sendto(marker, client.getsockname())
    got = []
    while (data := await asyncio.wait_for(loop.sock_recv(client, 100), 2)) != marker:
        got.append(data)
    return got


def _mmsg_built() -> bool:
    """The batched path must be tested wherever it could have been built: a missing module
    is a skip only on a machine without a C compiler, and a failure otherwise."""
    if Batch is not None:
        return True
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        return False
    pytest.fail("a C compiler is here but fata.platform._mmsg was not built: run `make setup`")


@pytest.fixture
def mmsg_pair():
    """A non-blocking server socket for a Batch, and a client: both on IPv4 loopback."""
    if not _mmsg_built():
        pytest.skip("no C compiler at install time, so no fata.platform._mmsg")
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.setblocking(False)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    client.settimeout(2)
    yield server, client
    server.close()
    client.close()


IO_PATHS = [
    pytest.param(True, id="mmsg"),
    pytest.param(False, id="plain"),
]


def _stack(batched: bool) -> SocketStack:
    if batched and not _mmsg_built():
        pytest.skip("no C compiler at install time, so no fata.platform._mmsg")
    return SocketStack(UnixConsole("t", "error"), batched_udp=batched)


@pytest.mark.parametrize("batched", IO_PATHS)
def test_udp_reply_and_handler_errors_do_not_stop_the_port(batched: bool) -> None:
    async def main() -> None:
        stack = _stack(batched)

        def handler(data: bytes, peer: tuple[str, int]) -> bytes | None:
            if data == b"boom":
                raise ValueError("bad datagram")
            return data.upper() if data != b"quiet" else None

        endpoint = await stack.udp_listen("127.0.0.1", 0, handler)
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.setblocking(False)
        loop = asyncio.get_running_loop()
        for payload in (b"boom", b"quiet", b"hello"):
            await loop.sock_sendto(client, payload, sockaddr(endpoint.local))
        data = await asyncio.wait_for(loop.sock_recv(client, 100), 2)
        assert data == b"HELLO"
        assert endpoint.handler_errors == 1
        assert endpoint.batched is batched
        client.close()
        await stack.close()

    run(main())


@pytest.mark.parametrize("batched", IO_PATHS)
def test_udp_bursts_from_several_clients_each_get_their_own_replies(batched: bool) -> None:
    """More datagrams per wake-up than one recvmmsg takes, from interleaved clients:
    every reply goes to the client that asked, none is lost or crossed."""

    async def main() -> None:
        stack = _stack(batched)
        endpoint = await stack.udp_listen("127.0.0.1", 0,
                                          lambda data, peer: data + repr(sockaddr(peer)).encode())
        clients = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
        for c in clients:
            c.bind(("127.0.0.1", 0))
            c.setblocking(False)
        loop = asyncio.get_running_loop()
        for round_ in range(3):
            for i in range(100):  # 300 datagrams queued before the loop runs the reader
                for n, c in enumerate(clients):
                    c.sendto(f"{round_}/{n}/{i}:".encode(), sockaddr(endpoint.local))
            for n, c in enumerate(clients):
                got = [await asyncio.wait_for(loop.sock_recv(c, 200), 2) for _ in range(100)]
                peer = repr(c.getsockname()).encode()
                assert got == [f"{round_}/{n}/{i}:".encode() + peer for i in range(100)]
        assert endpoint.received == 900
        for c in clients:
            c.close()
        await stack.close()

    run(main())


def test_mmsg_batch_directly(mmsg_pair) -> None:
    server, client = mmsg_pair
    batch = Batch(server.fileno(), 8, 2048)
    assert batch.recv() == []  # nothing waiting: no blocking, no error
    for i in range(10):
        client.sendto(b"q%d" % i, server.getsockname())
    wait_queued(server, [2] * 10)
    first = batch.recv()
    assert [d for d, _ in first] == [b"q%d" % i for i in range(8)]
    assert all(peer == client.getsockname() for _, peer in first)
    assert first[0][1] is first[7][1]  # one cached tuple per client
    # Replies are aligned with the last recv(); None sends nothing.
    assert batch.reply([b"r%d" % i if i % 2 else None for i in range(8)]) == 0
    assert [client.recv(10) for _ in range(4)] == [b"r1", b"r3", b"r5", b"r7"]
    with pytest.raises(ValueError, match="more replies"):
        batch.reply([None] * 9)
    with pytest.raises(TypeError, match="bytes-like or None, not str"):
        batch.reply(["text"])
    assert [d for d, _ in batch.recv()] == [b"q8", b"q9"]
    assert batch.reply([bytearray(b"ba"), memoryview(b"mv")]) == 0
    assert [client.recv(10) for _ in range(2)] == [b"ba", b"mv"]
    # A reply to a closed port comes back as ICMP; the pending error costs nothing.
    gone = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    gone.bind(("127.0.0.1", 0))
    gone.sendto(b"bye", server.getsockname())
    gone.close()
    wait_queued(server, [3])
    assert batch.recv()[0][0] == b"bye"
    assert batch.reply([b"to nobody"]) == 0
    client.sendto(b"after", server.getsockname())
    wait_queued(server, [5])
    seen = batch.recv() or batch.recv()
    assert [d for d, _ in seen] == [b"after"]
    with pytest.raises(ValueError, match="batch must be"):
        Batch(server.fileno(), 0)
    with pytest.raises(RuntimeError, match="not initialised"):
        Batch.__new__(Batch).recv()
    assert Batch.__new__(Batch).reply([]) == 0
    # Once closed, the descriptor is never used again (it may be someone else's by then).
    client.sendto(b"late", server.getsockname())
    wait_queued(server, [4])  # waiting in the queue when the batch is closed
    batch.close()
    assert batch.reply([]) == 0
    with pytest.raises(ValueError, match="closed"):
        batch.recv()


@pytest.mark.parametrize("batched", IO_PATHS)
def test_a_handler_that_closes_its_port_mid_batch(batched: bool) -> None:
    async def main() -> None:
        stack = _stack(batched)
        box: list = []
        seen: list[bytes] = []

        def handler(data: bytes, peer: tuple[str, int]) -> bytes | None:
            seen.append(data)
            if data == b"stop":
                box[0].close()
            return data

        endpoint = await stack.udp_listen("127.0.0.1", 0, handler)
        box.append(endpoint)
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.bind(("127.0.0.1", 0))
        client.setblocking(False)
        for payload in (b"a", b"stop", b"b"):
            client.sendto(payload, sockaddr(endpoint.local))
        await until(lambda: b"stop" in seen)  # the port is closed now, in that drain
        assert endpoint.handler_errors == 0
        # the batched path read all three in one batch; the plain one stopped at the close
        assert seen == ([b"a", b"stop", b"b"] if batched else [b"a", b"stop"])
        # the plain path answers as it goes; the batched one sends nothing once closed
        assert await received_before_marker(client) == ([] if batched else [b"a"])
        client.close()
        await stack.close()

    run(main())


def test_mmsg_reply_cache_answers_below_python(mmsg_pair) -> None:
    """Datagrams found in the cache never reach Python; replies keep the datagrams' order."""
    server, client = mmsg_pair
    batch = Batch(server.fileno(), 8, 2048)
    cache = {b"hit": b"-cached", b"big": b"x" * 2047}  # 2 + 2047 > bufsize: not from here
    batch.set_cache(cache, 2)
    sent = (b"01hit", b"02miss", b"03hit", b"hit", b"04big", b"05hit")
    for payload in sent:
        client.sendto(payload, server.getsockname())
    wait_queued(server, sizes(*sent))
    misses = batch.recv()
    assert [d for d, _ in misses] == [b"02miss", b"hit", b"04big"]
    assert batch.received == 6 and batch.hits == 3
    assert batch.reply([b"02python", None]) == 0  # fewer replies than misses: fine
    got = [client.recv(100) for _ in range(4)]
    assert got == [b"01-cached", b"02python", b"03-cached", b"05-cached"]
    assert batch.reply([None, b"again"]) == 0  # a second reply() does not resend the hits
    assert client.recv(100) == b"again"
    with pytest.raises(ValueError, match="more replies"):
        batch.reply([None] * 4)
    # the dict is live: the caller fills and clears it in place
    cache[b"new"] = b"-late"
    cache.pop(b"hit")
    for payload in (b"06new", b"07hit"):
        client.sendto(payload, server.getsockname())
    wait_queued(server, [5, 5])
    assert [d for d, _ in batch.recv()] == [b"07hit"]
    assert batch.reply([]) == 0
    assert client.recv(100) == b"06-late"
    batch.set_cache(None)
    client.sendto(b"08new", server.getsockname())
    wait_queued(server, [5])
    assert [d for d, _ in batch.recv()] == [b"08new"]
    with pytest.raises(TypeError):
        batch.set_cache([], 2)
    with pytest.raises(ValueError):
        batch.set_cache({}, -1)


def test_mmsg_reply_cache_limited_to_sources(mmsg_pair) -> None:
    """With sources, the cache answers only datagrams from those networks (prefixes cut
    mid-byte included); the others go up to Python."""
    import ipaddress

    server, client = mmsg_pair
    batch = Batch(server.fileno(), 8, 2048)
    nets = (ipaddress.ip_network("127.0.0.0/30"), ipaddress.ip_network("127.9.0.0/16"),
            ipaddress.ip_network("::1/128"))
    batch.set_cache({b"hit": b"-cached"}, 2, ReplyCache({}, 2, nets).packed_sources())
    others = []
    for source in ("127.0.0.4", "127.9.200.1"):  # outside /30; inside /16
        other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        other.bind((source, 0))
        other.settimeout(2)
        others.append(other)
    try:
        for sock, payload in ((client, b"01hit"), (others[0], b"02hit"), (others[1], b"03hit")):
            sock.sendto(payload, server.getsockname())
        wait_queued(server, sizes(b"01hit", b"02hit", b"03hit"))
        misses = batch.recv()
        assert [(d, peer[0]) for d, peer in misses] == [(b"02hit", "127.0.0.4")]
        assert batch.hits == 2
        assert batch.reply([b"02python"]) == 0
        assert client.recv(100) == b"01-cached" and others[1].recv(100) == b"03-cached"
        assert others[0].recv(100) == b"02python"
    finally:
        for other in others:
            other.close()
    with pytest.raises(TypeError, match="18-byte records"):
        batch.set_cache({}, 2, b"\x04\x20")
    assert ReplyCache({}, 2).packed_sources() is None
    assert ReplyCache({}, 2, nets).packed_sources()[:6] == b"\x04\x1e\x7f\x00\x00\x00"


@pytest.mark.parametrize("batched", IO_PATHS)
def test_udp_listen_with_a_reply_cache(batched: bool) -> None:
    """Both paths give the same answers; the batched one skips the handler for cached ones."""
    async def main() -> None:
        stack = _stack(batched)
        calls: list[bytes] = []
        cache: dict[bytes, bytes] = {}

        def handler(data: bytes, peer: tuple[str, int]) -> bytes | None:
            calls.append(data)
            reply = data[:1] + b"=" + data[1:].upper()
            cache[data[1:]] = reply[1:]  # what a memoising appliance does
            return reply

        endpoint = await stack.udp_listen("127.0.0.1", 0, handler,
                                          reply_cache=ReplyCache(cache, prefix=1))
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.setblocking(False)
        loop = asyncio.get_running_loop()
        got = []
        for payload in (b"1abc", b"2abc", b"3xyz", b"4abc"):  # one at a time: the cache
            client.sendto(payload, sockaddr(endpoint.local))  # fills between them
            got.append(await asyncio.wait_for(loop.sock_recv(client, 100), 2))
        assert got == [b"1=ABC", b"2=ABC", b"3=XYZ", b"4=ABC"]
        assert calls == ([b"1abc", b"3xyz"] if batched else [b"1abc", b"2abc", b"3xyz", b"4abc"])
        assert endpoint.received == 4
        client.close()
        await stack.close()

    run(main())


@pytest.mark.parametrize("batched", IO_PATHS)
def test_a_reply_of_the_wrong_type_is_a_handler_error(batched: bool) -> None:
    """A handler returning str fails that datagram only; bytearray is sent as bytes."""
    async def main() -> None:
        stack = _stack(batched)
        answers = {b"text": "not bytes", b"array": bytearray(b"array!"), b"fine": b"fine!"}
        endpoint = await stack.udp_listen("127.0.0.1", 0, lambda data, peer: answers[data])
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.bind(("127.0.0.1", 0))
        client.setblocking(False)
        for payload in (b"text", b"array", b"fine"):
            client.sendto(payload, sockaddr(endpoint.local))
        await until(lambda: endpoint.received == 3)
        assert await received_before_marker(client) == [b"array!", b"fine!"]
        assert endpoint.handler_errors == 1
        client.close()
        await stack.close()

    run(main())


GSO_ECHO = QUEUE_WAIT + r"""
import socket, sys
from fata.platform._mmsg import Batch
gso = sys.argv[1] == "1"
sizes = [int(x) for x in sys.argv[2].split(",")]
server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
server.bind(("127.0.0.1", 0))
server.setblocking(False)
clients = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
for c in clients:
    c.bind(("127.0.0.1", 0))
    c.settimeout(2)
batch = Batch(server.fileno(), 64, 4096, gso=gso)
assert batch.gso == gso, batch.gso
sent = {0: [], 1: []}
for n, size in enumerate(sizes):  # interleaved clients, runs of equal sizes and changes
    who = n % 2
    data = bytes([n]) * size
    clients[who].sendto(data, server.getsockname())
    sent[who].append(data)
wait_queued(server, sizes)
got = batch.recv()
assert len(got) == len(sizes), len(got)
assert batch.reply([data for data, _ in got]) == 0
for who, c in enumerate(clients):
    echoed = [c.recv(4096) for _ in sent[who]]
    assert echoed == sent[who], (who, [len(e) for e in echoed], [len(s) for s in sent[who]])
print("ok")
"""

SIZES = "100,100,100,100,100,100,50,50,100,100,2000,2000,2000,2000,1,1,1472,1472,1473,1473"


@pytest.mark.parametrize("gso", [True, False], ids=["gso", "one-per-datagram"])
def test_mmsg_replies_keep_each_peers_order_and_boundaries(gso: bool) -> None:
    """Replies grouped into UDP_SEGMENT messages arrive as the same datagrams, in order."""
    if not _mmsg_built():
        pytest.skip("no C compiler at install time, so no fata.platform._mmsg")
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if gso and not Batch(probe.fileno()).gso:
        pytest.skip("this kernel has no UDP_SEGMENT (Linux < 4.18)")
    probe.close()
    out = subprocess.run([sys.executable, "-c", GSO_ECHO, "1" if gso else "0", SIZES],
                         capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "ok", out.stderr


@pytest.mark.root  # a network namespace with a small-MTU loopback
@pytest.mark.tool("ip")
def test_mmsg_segment_larger_than_the_path_mtu_falls_back_to_single_datagrams() -> None:
    """A segment size the path refuses (EINVAL) is sent datagram by datagram instead."""
    if not _mmsg_built():
        pytest.skip("no C compiler at install time, so no fata.platform._mmsg")
    ns = f"fgso{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "mtu", "1280", "up"], check=True)
        out = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", GSO_ECHO, "1",
                              "1400,1400,1400,1400,100,100"],
                             capture_output=True, text=True, timeout=30)
        assert out.stdout.strip() == "ok", out.stderr
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def test_mmsg_over_ipv6() -> None:
    if not _mmsg_built():
        pytest.skip("no C compiler at install time, so no fata.platform._mmsg")
    try:
        server = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        server.bind(("::1", 0))
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    server.setblocking(False)
    client = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    client.bind(("::1", 0))
    client.settimeout(2)
    client.sendto(b"six", server.getsockname())
    batch = Batch(server.fileno())
    assert select.select([server], [], [], 2)[0], "the datagram did not arrive"
    assert batch.recv() == [(b"six", client.getsockname())]
    assert batch.reply([b"ok"]) == 0
    assert client.recv(10) == b"ok"
    server.close()
    client.close()


def test_tcp_echo_and_connect() -> None:
    async def main() -> None:
        stack = SocketStack(UnixConsole("t", "error"))

        async def echo(flow: Flow) -> None:
            while data := await flow.read():
                await flow.write(data)
            await flow.close()

        listener = await stack.tcp_listen("127.0.0.1", 0, echo)
        flow = await stack.tcp_connect(*listener.local, timeout=2)
        payload = bytes(range(256)) * 4096
        await flow.write(payload)
        received = bytearray()
        while len(received) < len(payload):
            received += await asyncio.wait_for(flow.read(), 2)
        assert bytes(received) == payload
        await flow.close()
        await stack.close()

    run(main())


def test_bind_failure_is_address_in_use() -> None:
    async def main() -> None:
        stack = SocketStack(UnixConsole("t", "error"))
        holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        holder.bind(("127.0.0.1", 0))
        with pytest.raises(AddressInUse, match="cannot bind UDP"):
            await stack.udp_listen("127.0.0.1", holder.getsockname()[1], lambda d, p: None)
        holder.close()
        await stack.close()

    run(main())
