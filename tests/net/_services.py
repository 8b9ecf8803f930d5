"""Services run on the stack under test, the Linux peer programs that talk to them, and a
virtual clock for stacks joined by an in-memory wire."""

from __future__ import annotations

import asyncio
import hashlib
import random
import selectors
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from fata.devices import Flow, Stack

T = TypeVar("T")


async def sink(flow: Flow) -> None:
    """Read to the end of the stream, answer with the byte count and sha256."""
    digest = hashlib.sha256()
    total = 0
    while True:
        data = await flow.read()
        if not data:
            break
        digest.update(data)
        total += len(data)
    await flow.write(f"{total} {digest.hexdigest()}\n".encode())


async def source(flow: Flow) -> None:
    """Read ``N SEED\\n`` and send N pseudo-random bytes, then FIN."""
    line = b""
    while not line.endswith(b"\n"):
        data = await flow.read()
        if not data:
            return
        line += data
    size, seed = (int(x) for x in line.split())
    data = random.Random(seed).randbytes(size)
    view = memoryview(data)
    for offset in range(0, size, 1 << 20):
        await flow.write(view[offset:offset + (1 << 20)])


async def echo(flow: Flow) -> None:
    """Echo until the peer closes."""
    while True:
        data = await flow.read()
        if not data:
            return
        await flow.write(data)


async def serve_all(stack: Stack) -> None:
    """UDP echo on 7, TCP echo on 7, sink on 9000, source on 9001."""
    await stack.udp_listen("0.0.0.0", 7, lambda data, peer: data)
    await stack.tcp_listen("0.0.0.0", 7, echo, backlog=512)
    await stack.tcp_listen("0.0.0.0", 9000, sink)
    await stack.tcp_listen("0.0.0.0", 9001, source)



# ---------------------------------------------------------------------- the virtual clock


class _JumpingSelector(selectors.DefaultSelector):
    """Never waits: where the loop would block until its next timer, the clock jumps there."""

    def __init__(self, loop: VirtualClockLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list:
        ready = super().select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            raise RuntimeError("virtual clock: nothing is ready and no timer is armed, "
                               "so the test would wait forever")
        self._loop.now += timeout
        return []


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """An asyncio loop on a virtual clock (trio's ``MockClock`` with ``autojump_threshold=0``).

    Time stands still while any callback is ready; when the loop would wait, the clock
    jumps to the next timer.  Two ``DirectStack``s on a ``MemoryWire`` (whose frames are
    ``call_soon`` callbacks) then exchange every segment in zero time and see every TCP
    timer (RTO, persist, keepalive, TIME-WAIT) fire at exactly the virtual instant it was
    armed for, deterministically and in microseconds of real time, however loaded the
    machine.  Nothing here may wait on a file descriptor or a thread."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        super().__init__(_JumpingSelector(self))

    def time(self) -> float:
        return self.now


def run_virtual(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on a ``VirtualClockLoop``."""
    with asyncio.Runner(loop_factory=VirtualClockLoop) as runner:
        return runner.run(main)


async def run_until(when: float) -> None:
    """Let the loop run, timers and all, until its clock reads ``when``."""
    loop = asyncio.get_running_loop()
    reached = loop.create_future()
    loop.call_at(when, lambda: reached.done() or reached.set_result(None))
    await reached


async def settle() -> None:
    """Let everything that takes no time happen (frames in flight, their answers, the
    answers to those), without the clock moving on to the next timer."""
    await run_until(asyncio.get_running_loop().time() + 1e-6)


async def until(predicate: Callable[[], bool], timeout: float = 10.0, step: float = 0.001,
                what: str = "the condition") -> float:
    """Wait until ``predicate()`` holds, checking every ``step`` of (virtual) time; fail after
    ``timeout``.  Returns the clock's reading then."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() >= deadline:
            raise AssertionError(f"{what} did not hold within {timeout} s")
        await run_until(loop.time() + step)
    return loop.time()

_DRAIN = r"""
def drain(c):
    # Read until EOF: (bytes read, their sha256).
    digest, n = hashlib.sha256(), 0
    while True:
        k = c.recv(1 << 20)
        if not k:
            break
        digest.update(k)
        n += len(k)
    return n, digest
"""

PEER_BULK = r"""
import hashlib, random, socket, sys, time
""" + _DRAIN + r"""
mode, host, size, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
port = int(sys.argv[5]) if len(sys.argv) > 5 else None
# A stall detector, not a bound on the transfer: every socket operation (one send of at
# most 1 MiB, one recv) may take STALL seconds; sendall() would apply it to the whole send.
STALL = 120
c = None
if mode == "up":
    data = random.Random(seed).randbytes(size)
    view = memoryview(data)
    start = time.perf_counter()
    c = socket.create_connection((host, port or 9000), timeout=STALL)
    sent = 0
    while sent < size:
        sent += c.send(view[sent:sent + (1 << 20)])
    c.shutdown(socket.SHUT_WR)
    reply = b""
    while True:
        chunk = c.recv(4096)
        if not chunk:
            break
        reply += chunk
    elapsed = time.perf_counter() - start
    n, digest = reply.split()
    print(int(n) == size and digest.decode() == hashlib.sha256(data).hexdigest(),
          size * 8 / elapsed / 1e6, elapsed)
else:
    expected = hashlib.sha256(random.Random(seed).randbytes(size)).hexdigest()
    start = time.perf_counter()
    c = socket.create_connection((host, port or 9001), timeout=STALL)
    c.sendall(f"{size} {seed}\n".encode())
    total, digest = drain(c)
    elapsed = time.perf_counter() - start
    print(total == size and digest.hexdigest() == expected, size * 8 / elapsed / 1e6, elapsed)
"""

LINUX_BULK_SERVER = r"""
# Linux's own stack playing the appliance's part: sink on 9000, source on 9001, the same
# protocol as ``sink``/``source`` above, so PEER_BULK measures Linux <-> Linux.
import hashlib, random, socket, sys, threading
""" + _DRAIN + r"""
def sink(c):
    n, digest = drain(c)
    c.sendall(f"{n} {digest.hexdigest()}\n".encode())
    c.close()
def source(c):
    line = b""
    while not line.endswith(b"\n"):
        line += c.recv(100)
    size, seed = (int(x) for x in line.split())
    view = memoryview(random.Random(seed).randbytes(size))
    sent = 0
    while sent < size:
        sent += c.send(view[sent:sent + (1 << 20)])
    c.close()
def serve(port, handler):
    s = socket.create_server((sys.argv[1], port), reuse_port=True)
    while True:
        c, _ = s.accept()
        threading.Thread(target=handler, args=(c,), daemon=True).start()
for port, handler in ((9000, sink), (9001, source)):
    threading.Thread(target=serve, args=(port, handler), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""

PEER_CONCURRENT = r"""
import socket, sys
host, count = sys.argv[1], int(sys.argv[2])
conns = [socket.create_connection((host, 7), timeout=30) for _ in range(count)]
for i, c in enumerate(conns):
    c.sendall(f"hello {i}\n".encode())
ok = 0
for i, c in enumerate(conns):
    want = f"hello {i}\n".encode()
    got = b""
    while len(got) < len(want):
        chunk = c.recv(100)
        if not chunk:
            break
        got += chunk
    ok += got == want
for c in conns:
    c.close()
print(ok)
"""
