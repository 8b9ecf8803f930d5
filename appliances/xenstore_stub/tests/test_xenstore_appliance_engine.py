"""Small self-contained checks of the xenstore daemon that a fork (``fata new``) carries
along: the engine answering on the wire, a watch, and the journal bringing back what was
written.  No sockets and no peers; the full suite (Xen's own tools and ``test-xenstore``,
rings, SIGKILL) lives in the project's ``tests/xenstore/``.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from fata.xen.xs_wire import Message, MessageReader, Op  # noqa: E402
from fata_xenstore_stub.daemon import Daemon, Session  # noqa: E402
from fata_xenstore_stub.journal import Journal  # noqa: E402
from fata_xenstore_stub.store import Store  # noqa: E402


def _ask(session: Session, op: int, payload: bytes, req: int = 1) -> list[Message]:
    session.receive(Message(op, req, 0, payload).encode())
    out = list(MessageReader().feed(b"".join(session.outbox)))
    session.outbox.clear()
    return out


def test_write_read_and_a_watch_on_the_wire() -> None:
    d = Daemon()
    tool, watcher = d.connect("tool"), d.connect("watcher")
    assert [m.op for m in _ask(watcher, Op.WATCH, b"/vm\0w\0")] == [Op.WATCH, Op.WATCH_EVENT]
    assert _ask(tool, Op.WRITE, b"/vm/1/name\0guest", req=5) == [Message(Op.WRITE, 5, 0, b"OK\0")]
    assert _ask(tool, Op.READ, b"/vm/1/name\0")[0].payload == b"guest"
    events = list(MessageReader().feed(b"".join(watcher.outbox)))
    assert [e.payload for e in events] == [b"/vm/1/name\0w\0"]
    assert _ask(tool, Op.READ, b"/vm/2\0")[0].payload == b"ENOENT\0"


def test_the_journal_brings_back_what_was_written(tmp_path: Path) -> None:
    d = Daemon()
    tool = d.connect("tool")
    _ask(tool, Op.WRITE, b"/local/domain/3/name\0three")
    journal = Journal(tmp_path)
    journal.append(list(d.effects))
    journal.sync()
    journal.close()
    again = Daemon(Store(Journal(tmp_path).load().nodes))
    assert _ask(again.connect("tool"), Op.READ, b"/local/domain/3/name\0")[0].payload == b"three"
