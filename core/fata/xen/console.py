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

Ordering is :mod:`fata.xen.xs_ring`'s: each index one aligned 4-byte store or load through
a ``uint32`` view, stored after the bytes it publishes and loaded before the bytes it
covers; x86-64 keeps stores in order and loads in order, which is all a byte queue without
event indexes needs (the header's ``wmb``/``rmb``).
"""

from __future__ import annotations

import platform

from fata.xen.ring import RingError, Shared

IN, IN_SIZE = 0, 1024
OUT, OUT_SIZE = 1024, 2048
IN_CONS, IN_PROD, OUT_CONS, OUT_PROD = range(768, 772)  # uint32 words: bytes 3072..3088
INTERFACE_SIZE = 3088  # sizeof(struct xencons_interface)

if platform.machine() not in ("x86_64", "AMD64"):  # pragma: no cover - other hardware
    raise ImportError("fata.xen.console relies on x86-64 store ordering (no fences yet)")


class ConsoleRing:
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
        queue_in = (IN, IN_SIZE, IN_CONS, IN_PROD)  # the guest's input
        queue_out = (OUT, OUT_SIZE, OUT_CONS, OUT_PROD)  # the guest's output
        if backend:
            queue_in, queue_out = queue_out, queue_in
        self._in, self._in_size, self._in_cons, self._in_prod = queue_in
        self._out, self._out_size, self._out_cons, self._out_prod = queue_out

    def read(self, limit: int | None = None) -> bytes:
        """Up to ``limit`` queued input bytes, consumed (the peer may now reuse the room)."""
        words, size = self._words, self._in_size
        cons = words[self._in_cons]
        queued = (words[self._in_prod] - cons) & 0xFFFFFFFF
        if queued > size:
            raise RingError(f"console input indexes are {queued} bytes apart (at most {size})")
        n = queued if limit is None else min(queued, limit)
        if n <= 0:
            return b""
        start = cons & (size - 1)
        first = min(n, size - start)
        base = self._in
        data = bytes(self._bytes[base + start:base + start + first])
        if first < n:
            data += bytes(self._bytes[base:base + n - first])
        words[self._in_cons] = (cons + n) & 0xFFFFFFFF  # after the copy: the room is free
        return data

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Queue as much of ``data`` as there is room for; how many bytes that was."""
        words, size = self._words, self._out_size
        prod = words[self._out_prod]
        used = (prod - words[self._out_cons]) & 0xFFFFFFFF
        if used > size:
            raise RingError(f"console output indexes are {used} bytes apart (at most {size})")
        view = memoryview(data).cast("B")
        n = min(len(view), size - used)
        if not n:
            return 0
        start = prod & (size - 1)
        first = min(n, size - start)
        base = self._out
        self._bytes[base + start:base + start + first] = view[:first]
        if first < n:
            self._bytes[base:base + n - first] = view[first:n]
        words[self._out_prod] = (prod + n) & 0xFFFFFFFF  # after the data: the publish
        return n

    def input_pending(self) -> bool:
        """Whether the peer has queued bytes we have not read."""
        return self._words[self._in_prod] != self._words[self._in_cons]

    def output_room(self) -> int:
        """How many bytes :meth:`write` would take now (0: wait for the peer to read)."""
        used = (self._words[self._out_prod] - self._words[self._out_cons]) & 0xFFFFFFFF
        return max(0, self._out_size - used)

    def release(self) -> None:
        """Drop the views so the page's mapping can be closed."""
        self._words.release()
        self._bytes.release()
