"""The xenstore daemon: the engine (``daemon``) on the local sockets and on introduced
domains' shared-memory rings, the store durable.

Each connection's task reads and hands the bytes to its :class:`~.daemon.Session`; once
per pass of the event loop, after every connection that had bytes has handled them, a
flush runs: what the requests changed goes to the journal and is fsynced (one fsync for
all of them: group commit), and only then are the answers and watch events queued to
every connection that has some, each written by a writer task of its connection, so a
client that does not read holds up nobody else.  A dom0 tool with more than
``--max-queued`` writes pending is dropped; a domain's ring is read no further while its
requests in flight reach ``--quota-outstanding``, and its watch events beyond
``--quota-events`` are dropped (and counted).

With a Xen hypervisor (``fata run --xen-hypervisor PATH``), ``INTRODUCE domid mfn port``
maps that page of the domain and binds its event channel before it is answered; the domain
is then served on its ring as an unprivileged connection, until ``RELEASE``.  A guest's
reconnection request resets the ring and its connection (watches and transactions gone).

The store is loaded at start (a damaged one stops the start with the file and byte),
written whole then, and again every ``--snapshot-every`` records.

The journal writes the host directory ``--store`` directly, not through a device yet.
"""

from __future__ import annotations

import argparse
import asyncio
import mmap
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from fata.devices import Console, Flow, Lifecycle
from fata.devices.local import LocalSockets
from fata.devices.xen import XenControl
from fata.platform import PlatformError
from fata.platform.xs_ring_flow import RingFlow
from fata.xen.evtchn import EventChannel
from fata.xen.hypervisor import HypervisorError
from fata.xen.xs_ring import XsRing

from fata_xenstore_stub.daemon import Daemon, Introduction, Session
from fata_xenstore_stub.journal import Journal
from fata_xenstore_stub.store import Quotas, Store


@dataclass
class Ring:
    """An introduced domain's ring: the mapped page, its channel and the flow serving it."""

    domid: int
    page: mmap.mmap
    ring: XsRing
    channel: EventChannel
    flow: RingFlow
    task: asyncio.Task[None]


class XenstoreAppliance:
    def __init__(self, local: LocalSockets, console: Console, args: argparse.Namespace,
                 xen: XenControl | None = None) -> None:
        self.local = local
        self.console = console
        self.args = args
        self.xen = xen
        self.journal = Journal(Path(args.store))
        self.daemon = Daemon()
        self.queues: dict[Session, asyncio.Queue[tuple[bytes, int] | None]] = {}
        self.readable: dict[Session, asyncio.Event] = {}
        self.rings: dict[int, Ring] = {}
        self.records = 0
        self._flush_soon = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self, lifecycle: Lifecycle) -> None:
        loaded = self.journal.load()
        for note in loaded.notes:
            self.console.warning(note)
        args = self.args
        self.daemon.store = Store(loaded.nodes, Quotas(
            args.quota_nodes, args.quota_entry_size, args.quota_watches,
            args.quota_transactions, args.quota_outstanding, args.quota_events))
        self.daemon.rings = self.xen is not None and self.xen.available
        self.journal.snapshot(self.daemon.store.nodes)
        path = str(self.args.socket)
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        listeners = [
            await self.local.listen(path, lambda flow: self.serve(flow, False)),
            await self.local.listen(path + "_ro", lambda flow: self.serve(flow, True)),
        ]
        rings = " and introduced domains' rings" if self.daemon.rings else ""
        self.console.info(f"serving {len(loaded.nodes)} nodes from {self.args.store} on "
                          f"{path} (and {path}_ro){rings}; replayed {loaded.records} log "
                          "records")
        try:
            await lifecycle.wait_stopped()
        finally:
            for listener in listeners:
                listener.close()
            for domid in list(self.rings):
                await self._detach(domid)
            self.journal.close()

    async def serve(self, flow: Flow, read_only: bool, domid: int = 0) -> None:
        session = self.daemon.connect(flow, read_only=read_only, domid=domid)
        queue: asyncio.Queue[tuple[bytes, int] | None] = asyncio.Queue()
        readable = self.readable[session] = asyncio.Event()
        self.queues[session] = queue
        writer = asyncio.get_running_loop().create_task(self._writer(flow, queue, session))
        try:
            while not session.closed:
                if not session.wants_input:  # its quota of requests in flight is reached
                    readable.clear()
                    await readable.wait()
                    continue
                data = await flow.read()
                if not data:
                    break
                session.receive(data)
                self._flush_later()
        finally:
            session.close()
            self.queues.pop(session, None)
            self.readable.pop(session, None)
            queue.put_nowait(None)
            await writer

    def _flush_later(self) -> None:
        if not self._flush_soon:  # every connection read in this pass of the loop
            self._flush_soon = True  # shares one fsync (group commit)
            asyncio.get_running_loop().call_soon(self.flush)

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
            if session.privileged and queue.qsize() >= self.args.max_queued:
                self.console.warning("dropping a connection that does not read its answers")
                session.close()
                session.outbox.clear()
                continue
            queue.put_nowait((b"".join(session.outbox), len(session.outbox)))
            session.backlog += len(session.outbox)
            session.outbox.clear()
        for intro in daemon.introductions:
            self._spawn(self._attach(intro))
        daemon.introductions.clear()
        for domid in daemon.releases:
            self._spawn(self._detach(domid))
        daemon.releases.clear()
        if self.records >= self.args.snapshot_every:
            self.journal.snapshot(daemon.store.nodes)
            self.records = 0
        self._flush_soon = False

    async def _writer(self, flow: Flow, queue: asyncio.Queue[tuple[bytes, int] | None],
                      session: Session) -> None:
        try:
            while (item := await queue.get()) is not None:
                await flow.write(item[0])
                session.backlog -= item[1]
                if session.queue:
                    session.process()  # requests held back by the quota may go on
                    self._flush_later()
                event = self.readable.get(session)
                if event is not None and session.wants_input:
                    event.set()
        except ConnectionError:
            session.close()
            flow.abort()

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _attach(self, intro: Introduction) -> None:
        """Map the domain's ring page and bind its channel, then answer the INTRODUCE."""
        assert self.xen is not None
        try:
            page = await self.xen.map_foreign(intro.domid, intro.mfn)
            try:
                channel = await self.xen.bind_interdomain(intro.domid, intro.port)
            except BaseException:
                page.close()
                raise
        except (HypervisorError, PlatformError, ConnectionError, OSError) as exc:
            self.console.warning(f"INTRODUCE of domain {intro.domid} (page {intro.mfn}, "
                                 f"port {intro.port}) failed: {exc}")
            self.daemon.introduced(intro, "EINVAL")
            self._flush_later()
            return
        ring = XsRing(memoryview(page), server=True)
        ring.advertise(intro.features)
        self.rings[intro.domid] = self._serve_ring(intro.domid, page, ring, channel)
        self.daemon.introduced(intro, None)
        self._flush_later()
        self.console.info(f"domain {intro.domid} introduced: ring at page {intro.mfn}, "
                          f"event channel {channel.port}")

    def _serve_ring(self, domid: int, page: mmap.mmap, ring: XsRing, channel: EventChannel
                    ) -> Ring:
        flow = RingFlow(ring, channel, domid=domid,
                        on_reconnect=lambda: self._reconnect(domid))
        task = asyncio.get_running_loop().create_task(self.serve(flow, False, domid))
        return Ring(domid, page, ring, channel, flow, task)

    def _reconnect(self, domid: int) -> None:
        """The guest asked for a reset: the old connection ends, a fresh one starts."""
        old = self.rings.get(domid)
        if old is None:
            return
        old.ring.reset()
        self.rings[domid] = self._serve_ring(domid, old.page, old.ring, old.channel)
        old.channel.notify()

    async def _detach(self, domid: int) -> None:
        """Domain ``domid`` was released: stop serving its ring and let the page go."""
        ring = self.rings.pop(domid, None)
        if ring is None:
            return
        ring.flow.abort()
        await ring.task
        assert self.xen is not None
        await self.xen.close_port(ring.channel)
        ring.ring.release()
        with suppress(BufferError):  # a view still alive: the mapping goes with it
            ring.page.close()


async def start(*, local: LocalSockets, console: Console, lifecycle: Lifecycle,
                xen: XenControl, args: argparse.Namespace) -> None:
    """Entry point called by the Fata runtime."""
    await XenstoreAppliance(local, console, args, xen).run(lifecycle)
