"""The running daemon under abuse from one dom0 connection while another is served:
a message announcing too much payload, one cut short by a disconnect, a client gone in the
middle of a transaction, a watcher that never reads under a storm of changes."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from appliance_util import wait_until
from fata.xen.xs_wire import Message, MessageReader, Op
from test_xs_appliance import RunningXenstore

pytestmark = pytest.mark.tool("xenstore-write")


class Conn:
    """A raw connection to the daemon's socket."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(20)
        self.sock.connect(str(path))
        self.reader = MessageReader()
        self.ready: list[Message] = []

    def send(self, op: int, payload: bytes, req: int = 1, tx: int = 0) -> None:
        self.sock.sendall(Message(op, req, tx, payload).encode())

    def answer(self) -> Message:
        while True:
            while self.ready:
                msg = self.ready.pop(0)
                if msg.op != Op.WATCH_EVENT:
                    return msg
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed by the daemon")
            self.ready += self.reader.feed(data)

    def ask(self, op: int, payload: bytes, tx: int = 0) -> bytes:
        self.send(op, payload, tx=tx)
        msg = self.answer()
        return (b"error " if msg.op == Op.ERROR else b"") + msg.payload.rstrip(b"\0")

    def closed_by_daemon(self) -> bool:
        try:
            return self.sock.recv(65536) == b""
        except ConnectionResetError:
            return True


@pytest.fixture()
def daemon(tmp_path: Path) -> Iterator[RunningXenstore]:
    running = RunningXenstore(tmp_path, tmp_path / "store")
    yield running
    running.stop()


def test_oversized_and_truncated_messages_cost_only_their_connection(daemon) -> None:
    good = Conn(daemon.socket)
    bad = Conn(daemon.socket)
    bad.sock.sendall(struct.pack("<IIII", Op.WRITE, 1, 0, 5000) + b"x" * 100)
    assert bad.closed_by_daemon()  # more than 4096 bytes announced: no boundary left
    cut = Conn(daemon.socket)
    cut.sock.sendall(Message(Op.WRITE, 1, 0, b"/cut\0never").encode()[:-3])
    cut.sock.close()  # half a message, then gone
    assert good.ask(Op.WRITE, b"/fine\0yes") == b"OK"
    assert good.ask(Op.READ, b"/cut\0") == b"error ENOENT"
    assert good.ask(Op.READ, b"/fine\0") == b"yes"
    assert good.ask(Op.READ, b"\0") == b"error EINVAL"  # malformed path: an answer


def test_a_client_gone_mid_transaction_commits_nothing(daemon) -> None:
    quitter, other = Conn(daemon.socket), Conn(daemon.socket)
    tx = int(quitter.ask(Op.TRANSACTION_START, b"\0"))
    assert quitter.ask(Op.WRITE, b"/half/a\0in tx", tx=tx) == b"OK"
    quitter.sock.close()
    tx2 = int(other.ask(Op.TRANSACTION_START, b"\0"))
    assert other.ask(Op.WRITE, b"/half/b\0other", tx=tx2) == b"OK"
    assert other.ask(Op.TRANSACTION_END, b"T\0", tx=tx2) == b"OK"
    assert daemon.tool("xenstore-read", "/half/b").stdout == "other\n"
    assert daemon.tool("xenstore-read", "/half/a", check=False).returncode != 0


def test_a_watcher_that_never_reads_is_dropped_and_the_writer_goes_on(tmp_path) -> None:
    daemon = RunningXenstore(tmp_path, tmp_path / "store", app_args=("--max-queued", "8"))
    try:
        watcher, writer = Conn(daemon.socket), Conn(daemon.socket)
        assert watcher.ask(Op.WATCH, b"/storm\0t\0") == b"OK"
        value = b"v" * 200
        batch = 500
        for round_ in range(60):  # 30,000 changes, each an event the watcher ignores
            writer.sock.sendall(b"".join(
                Message(Op.WRITE, i, 0, b"/storm/n%d\0" % (i % 50) + value).encode()
                for i in range(round_ * batch, (round_ + 1) * batch)))
            for _ in range(batch):
                assert writer.answer().payload == b"OK\0"
            if "dropping a connection" in daemon.output():
                break
        wait_until(lambda: "dropping a connection" in daemon.output(), 20,
                   "the watcher dropped", daemon.output)
        assert writer.ask(Op.READ, b"/storm/n1\0") == value
    finally:
        daemon.stop()
