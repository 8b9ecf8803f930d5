"""The xenstore daemon: the engine (``daemon``) on the local sockets, the store durable.

Each connection's task reads and hands the bytes to its :class:`~.daemon.Session`; once
per pass of the event loop, after every connection that had bytes has handled them, a
flush runs: what the requests changed goes to the journal and is fsynced (one fsync for
all of them: group commit), and only then are the answers and watch events queued to
every connection that has some, each written by a writer task of its connection, so a
client that does not read holds up nobody else; past ``--max-queued`` pending writes it is
dropped.  The store is loaded at start (a damaged one stops the start with the file and
byte), written whole then, and again every ``--snapshot-every`` records.

The journal writes the host directory ``--store`` directly, not through a device yet.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from fata.devices import Console, Flow, Lifecycle
from fata.devices.local import LocalSockets

from fata_xenstore_stub.daemon import Daemon, Session
from fata_xenstore_stub.journal import Journal
from fata_xenstore_stub.store import Store


class XenstoreAppliance:
    def __init__(self, local: LocalSockets, console: Console, args: argparse.Namespace
                 ) -> None:
        self.local = local
        self.console = console
        self.args = args
        self.journal = Journal(Path(args.store))
        self.daemon = Daemon()
        self.queues: dict[Session, asyncio.Queue[bytes | None]] = {}
        self.records = 0
        self._flush_soon = False

    async def run(self, lifecycle: Lifecycle) -> None:
        loaded = self.journal.load()
        for note in loaded.notes:
            self.console.warning(note)
        self.daemon.store = Store(loaded.nodes)
        self.journal.snapshot(self.daemon.store.nodes)
        path = str(self.args.socket)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        listeners = [
            await self.local.listen(path, lambda flow: self.serve(flow, False)),
            await self.local.listen(path + "_ro", lambda flow: self.serve(flow, True)),
        ]
        self.console.info(f"serving {len(loaded.nodes)} nodes from {self.args.store} on "
                          f"{path} (and {path}_ro); replayed {loaded.records} log records")
        try:
            await lifecycle.wait_stopped()
        finally:
            for listener in listeners:
                listener.close()
            self.journal.close()

    async def serve(self, flow: Flow, read_only: bool) -> None:
        session = self.daemon.connect(flow, read_only=read_only)
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.queues[session] = queue
        writer = asyncio.get_running_loop().create_task(self._writer(flow, queue, session))
        try:
            while not session.closed:
                data = await flow.read()
                if not data:
                    break
                session.receive(data)
                if not self._flush_soon:  # every connection read in this pass of the loop
                    self._flush_soon = True  # shares one fsync (group commit)
                    asyncio.get_running_loop().call_soon(self.flush)
        finally:
            session.close()
            self.queues.pop(session, None)
            queue.put_nowait(None)
            await writer

    def flush(self) -> None:
        """Make the changes durable, then queue every connection's answers and events."""
        self._flush_soon = False
        daemon = self.daemon
        if daemon.effects:
            self.journal.append(daemon.effects)
            daemon.effects.clear()
            self.journal.sync()
            self.records += 1
        for session, queue in list(self.queues.items()):
            if not session.outbox:
                continue
            if queue.qsize() >= self.args.max_queued:
                self.console.warning("dropping a connection that does not read its answers")
                session.close()
                session.outbox.clear()
                continue
            queue.put_nowait(b"".join(session.outbox))
            session.outbox.clear()
        if self.records >= self.args.snapshot_every:
            self.journal.snapshot(daemon.store.nodes)
            self.records = 0
        self._flush_soon = False

    async def _writer(self, flow: Flow, queue: asyncio.Queue[bytes | None],
                      session: Session) -> None:
        try:
            while (data := await queue.get()) is not None:
                await flow.write(data)
        except ConnectionError:
            session.close()
            flow.abort()


async def start(*, local: LocalSockets, console: Console, lifecycle: Lifecycle,
                args: argparse.Namespace) -> None:
    """Entry point called by the Fata runtime."""
    await XenstoreAppliance(local, console, args).run(lifecycle)
