"""Event channels between Linux processes: Xen's notification primitive on eventfds.

A Xen event channel connects a port in one domain with a port in another; either end
*notifies*, which sets the other end's pending bit and wakes whoever waits on it.  Here
each end of a bound channel holds two eventfds: the one it waits on (``recv``) and its
peer's (``send``), handed out by the hypervisor process (``fata.platform.xen_hypervisor``)
over ``SCM_RIGHTS``.  A notification is one ``eventfd_write``; several before the peer
looks merge into one wake-up, exactly as a pending bit does.  Waiting is a reader on the
event loop, never polling: a ring driver gets its callback once per wake-up and then looks
at the shared ring itself, which is the contract of a real event channel too.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from contextlib import suppress


class EventChannel:
    """One end of a bound channel: ``port`` in its domain, ``notify`` to wake the peer,
    ``start(callback)`` to be called on each of the peer's notifications."""

    def __init__(self, port: int, recv_fd: int, send_fd: int) -> None:
        self.port = port
        self._recv = recv_fd
        self._send = send_fd
        self._callback: Callable[[], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.notified = 0  # notifications sent, for tests and statistics
        self.closed = False

    @classmethod
    def pair(cls) -> tuple[EventChannel, EventChannel]:
        """Both ends of a channel in this process (unit tests of ring drivers)."""
        a, b = new_eventfd(), new_eventfd()
        return cls(1, a, b), cls(1, b, a)

    def notify(self) -> None:
        """Set the peer's pending bit (cheap; merging repeated notifications is the peer's)."""
        if self.closed:
            return
        with suppress(BlockingIOError):  # the counter is full: the peer is pending already
            os.eventfd_write(self._send, 1)
        self.notified += 1

    def start(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` from the running loop whenever the peer has notified; a
        notification that came before ``start`` is delivered at once."""
        self._callback = callback
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._recv, self._ready)

    def _ready(self) -> None:
        with suppress(BlockingIOError):
            os.eventfd_read(self._recv)  # clear the pending bit before looking at the ring
        if self._callback is not None:
            self._callback()

    def stop(self, callback: Callable[[], None] | None = None) -> None:
        """No more callbacks (the pending bit is kept for whoever starts again); with
        ``callback``, only if that is still the one called (a newer user keeps its own)."""
        if callback is not None and self._callback != callback:
            return
        if self._loop is not None:
            self._loop.remove_reader(self._recv)
            self._loop = None
        self._callback = None

    def close(self) -> None:
        """Stop and release this end's descriptors; notifying afterwards does nothing."""
        if self.closed:
            return
        self.stop()
        self.closed = True
        for fd in {self._recv, self._send}:
            with suppress(OSError):
                os.close(fd)


def new_eventfd() -> int:
    """A non-blocking, close-on-exec eventfd: one end's pending bit."""
    return os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
