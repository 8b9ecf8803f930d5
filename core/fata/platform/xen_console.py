"""The PV console of the Xen platform (``xen/io/console.h``): the guest's log lines go to
its console page instead of stderr, and domain 0's console daemon reads them.

Guest side, :func:`attach`: the runtime calls it at boot when the toolstack says the guest
has a console (``FATA_XEN_CONSOLE`` in its environment); it maps the page named by
``HVM_PARAM_CONSOLE_PFN``, opens the port of ``HVM_PARAM_CONSOLE_EVTCHN`` and makes the
console's stream a :class:`ConsoleStream`.  A line that does not fit waits in a bounded
buffer until the daemon reads (``out`` is 2 KiB); beyond ``BUFFER`` bytes the oldest
waiting bytes are dropped and counted, so a stalled daemon costs the guest bounded memory
and never blocks it.

Domain 0 side, :class:`ConsoleDaemon`: what ``xenconsoled`` does for one guest, map its
console page, bind its port, and copy what it prints to a stream (``fata run``'s stderr).
"""

from __future__ import annotations

import os
from typing import TextIO

from fata.platform.unix import UnixConsole
from fata.platform.xen_guest import guest_connection
from fata.platform.xen_host import HypervisorClient
from fata.xen.console import ConsoleRing
from fata.xen.evtchn import EventChannel
from fata.xen.hypervisor import DOMID_SELF, HVM_PARAM_CONSOLE_EVTCHN, HVM_PARAM_CONSOLE_PFN

CONSOLE_ENV = "FATA_XEN_CONSOLE"
BUFFER = 64 * 1024


class ConsoleStream:
    """A text stream writing into the guest's end of its console page."""

    def __init__(self, ring: ConsoleRing, channel: EventChannel) -> None:
        self._ring, self._channel = ring, channel
        self._waiting = bytearray()
        self.dropped = 0
        channel.start(self._drain)

    def write(self, text: str) -> int:
        self._waiting += text.encode("utf-8", "replace")
        if len(self._waiting) > BUFFER:
            over = len(self._waiting) - BUFFER
            del self._waiting[:over]
            self.dropped += over
        self._drain()
        return len(text)

    def _drain(self) -> None:
        if self._waiting:
            taken = self._ring.write(self._waiting)
            if taken:
                del self._waiting[:taken]
                self._channel.notify()

    def flush(self) -> None:
        """Everything that fits is in the page already (``write`` pushes at once)."""


async def attach(console: UnixConsole) -> None:
    """Make ``console`` write to this guest's console page (see the module docstring)."""
    xen, _xs = await guest_connection("the Xen console")
    page = await xen.map_foreign(DOMID_SELF, await xen.get_param(HVM_PARAM_CONSOLE_PFN))
    channel = await xen.open_port(await xen.get_param(HVM_PARAM_CONSOLE_EVTCHN))
    console.stream = ConsoleStream(ConsoleRing(memoryview(page), backend=False), channel)


class ConsoleDaemon:
    """Domain 0's reader of one guest's console, copying it to ``out``."""

    def __init__(self, ring: ConsoleRing, channel: EventChannel, out: TextIO) -> None:
        self._ring, self._channel, self._out = ring, channel, out
        self._partial = b""
        channel.start(self._read)

    @classmethod
    async def open(cls, xen: HypervisorClient, domid: int, pfn: int, port: int,
                   out: TextIO) -> ConsoleDaemon:
        page = await xen.map_foreign(domid, pfn)
        channel = await xen.bind_interdomain(domid, port)
        return cls(ConsoleRing(memoryview(page), backend=True), channel, out)

    def _read(self) -> None:
        data = self._ring.read()
        if not data:
            return
        self._channel.notify()  # room again: the guest may write what waits
        self._out.write(data.decode("utf-8", "replace"))
        self._out.flush()

    def stop(self) -> None:
        self._read()
        self._channel.stop()


def wanted() -> bool:
    """Whether this process is a guest whose toolstack gave it a console."""
    return os.environ.get(CONSOLE_ENV) == "1"
