"""Helpers every appliance's end-to-end tests share: free ports, waiting on a condition,
network namespaces, the stacks an appliance runs on, its resident memory."""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYTHON = ROOT / ".venv" / "bin" / "python"
DIRECT_HOST = "10.77.0.2"  # where --net direct answers by default (host side 10.77.0.1)
CLONE_NEWNET = 0x40000000


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port")


def wait_until(predicate: Callable[[], bool], timeout: float = 15.0, what: str = "the condition",
               detail: Callable[[], str] = lambda: "") -> None:
    """Poll ``predicate`` (a request to a running server, a look at its log) every 0.05 s
    until it holds; fail after ``timeout`` seconds, with ``detail()`` (a log) in the message."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout} s\n{detail()}")
        time.sleep(0.05)


class Lines:
    """A child's text pipe read line by line on a thread, so that a test waits for the next
    line with a deadline: a peer that stays silent fails the test instead of hanging it
    (``select`` cannot be trusted here, the pipe's reader buffers lines ahead)."""

    def __init__(self, stream: IO[str]) -> None:
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line)
        self._lines.put("")  # the end, as readline() says it

    def next(self, timeout: float, what: str = "a line") -> str:
        """The next line ("" once the pipe has ended)."""
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no {what} within {timeout} s") from None


@contextlib.contextmanager
def network_namespace(name: str) -> Iterator[None]:
    """Run this thread, and the processes it starts, in a network namespace made with
    ``ip netns add NAME`` (``setns(2)``; Python 3.11 has no ``os.setns``), then come back."""
    libc = ctypes.CDLL(None, use_errno=True)
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {name} failed")
        yield
    finally:
        if libc.setns(own, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns back failed")
        os.close(own)
        os.close(target)


APPLIANCE_STACKS = [
    "socket",
    pytest.param("direct", marks=[
        pytest.mark.root, pytest.mark.tool("ip"),
        pytest.mark.skipif(not os.path.exists("/dev/net/tun"), reason="needs /dev/net/tun")]),
]
"""The stacks an appliance's own tests run it on (``params=`` of their fixtures)."""


def rss_kb(pid: int) -> int:
    """Resident memory of the appliance: the ``fata run`` process or its child, the larger."""
    pids = [pid]
    try:
        pids += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        pass
    best = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    best = max(best, int(line.split()[1]))
        except FileNotFoundError:
            pass
    return best


class LoggedProcess:
    """A running appliance process whose output goes to ``log``: read it, signal it, stop
    it (SIGTERM, then SIGKILL after 10 s)."""

    proc: subprocess.Popen
    log: Path

    def output(self) -> str:
        return self.log.read_text()

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
