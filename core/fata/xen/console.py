"""The PV console page (``struct xencons_interface``, ``xen/io/console.h``): two byte queues
with free-running indexes, like the xenstore ring but of different sizes.  Sans-IO: a
:class:`ConsoleRing` is one end's view of the shared page, bytes in and out; the caller
notifies the console event channel whenever a call says the ring moved.

Layout (byte offsets, checked against gcc on the real header): ``in`` 0..1024 (what the
console daemon sends the guest: keystrokes), ``out`` 1024..3072 (what the guest prints),
then the ``uint32`` fields ``in_cons in_prod out_cons out_prod`` at 3072, 3076, 3080,
3084; 3088 bytes in all, at the start of the console page.  A byte at stream offset ``x``
lives at ``x % len(queue)``; ``prod - cons`` (mod 2**32) is what is queued and is never more
than the queue's size, else the peer broke the ring (:class:`~fata.xen.ring.RingError`).

Each queue is a :class:`~fata.xen.byte_queue.ByteQueue` (its ordering argument is there).
"""

from __future__ import annotations

import platform

from fata.xen.byte_queue import ByteQueue, Duplex
from fata.xen.ring import Shared

IN, IN_SIZE = 0, 1024
OUT, OUT_SIZE = 1024, 2048
IN_CONS, IN_PROD, OUT_CONS, OUT_PROD = range(768, 772)  # uint32 words: bytes 3072..3088
INTERFACE_SIZE = 3088  # sizeof(struct xencons_interface)

if platform.machine() not in ("x86_64", "AMD64"):  # pragma: no cover - other hardware
    raise ImportError("fata.xen.console relies on x86-64 store ordering (no fences yet)")


class ConsoleRing(Duplex):
    """One end of a console page: the guest writes ``out`` and reads ``in``; the console
    daemon (``backend=True``) the reverse.  ``page`` is the shared page (writable, at least
    the 3088 bytes of the interface; normally the whole 4 KiB page)."""

    def __init__(self, page: Shared, *, backend: bool) -> None:
        view = memoryview(page).cast("B")
        if view.readonly:
            raise ValueError("a console page must be writable")
        if len(view) < INTERFACE_SIZE:
            raise ValueError(f"a console interface is {INTERFACE_SIZE} bytes")
        self._bytes = view[:INTERFACE_SIZE]
        self._words = self._bytes.cast("I")
        self.backend = backend
        guest_in = ByteQueue(self._bytes, self._words, IN, IN_SIZE, IN_CONS, IN_PROD,
                             "console input")
        guest_out = ByteQueue(self._bytes, self._words, OUT, OUT_SIZE, OUT_CONS, OUT_PROD,
                              "console output")
        self._input, self._output = (guest_out, guest_in) if backend else (guest_in, guest_out)

    def release(self) -> None:
        """Drop the views so the page's mapping can be closed."""
        self._words.release()
        self._bytes.release()
