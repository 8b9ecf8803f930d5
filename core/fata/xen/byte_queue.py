"""A byte queue of a shared page with free-running indexes: what the xenstore ring
(``xenstore_domain_interface``) and the console page (``xencons_interface``) are made of, two
per page, one each way.

A byte at stream offset ``x`` lives at ``x % size`` (``size`` a power of two); ``prod - cons``
(mod 2**32) is what is queued and is never more than ``size``, else the peer broke the page
(:class:`~fata.xen.ring.RingError`).  Each index is one aligned 4-byte store or load through a
``uint32`` view, stored after the bytes it publishes and loaded before the bytes it covers;
x86-64 keeps stores in order and loads in order, which is all a queue without event indexes
needs (the headers' ``wmb``/``rmb``).
"""

from __future__ import annotations

from fata.xen.ring import MASK32, RingError


class ByteQueue:
    """One queue: ``size`` bytes at ``base`` of ``page``, its consumer and producer indexes
    the ``uint32`` words ``cons`` and ``prod`` of ``words`` (a view of the same page);
    ``name`` says which queue in errors."""

    def __init__(self, page: memoryview, words: memoryview, base: int, size: int, cons: int,
                 prod: int, name: str) -> None:
        if size & (size - 1):
            raise ValueError(f"a byte queue's size is a power of two, not {size}")
        self._page, self._words = page, words
        self.base, self.size, self.cons, self.prod, self.name = base, size, cons, prod, name

    def _queued(self) -> int:
        words = self._words
        queued = (words[self.prod] - words[self.cons]) & MASK32
        if queued > self.size:
            raise RingError(f"{self.name} indexes are {queued} bytes apart "
                            f"(at most {self.size})")
        return queued

    def read(self, limit: int | None = None) -> bytes:
        """Up to ``limit`` queued bytes, consumed (the producer may reuse the room)."""
        queued = self._queued()
        n = queued if limit is None else min(queued, limit)
        if n <= 0:
            return b""
        cons, size, base, page = self._words[self.cons], self.size, self.base, self._page
        start = cons & (size - 1)
        first = min(n, size - start)
        data = bytes(page[base + start:base + start + first])
        if first < n:
            data += bytes(page[base:base + n - first])
        self._words[self.cons] = (cons + n) & MASK32  # after the copy: the room is free
        return data

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Queue as much of ``data`` as there is room for; how many bytes that was."""
        view = memoryview(data).cast("B")
        n = min(len(view), self.size - self._queued())
        if not n:
            return 0
        prod, size, base, page = self._words[self.prod], self.size, self.base, self._page
        start = prod & (size - 1)
        first = min(n, size - start)
        page[base + start:base + start + first] = view[:first]
        if first < n:
            page[base:base + n - first] = view[first:n]
        self._words[self.prod] = (prod + n) & MASK32  # after the data: the publish
        return n

    def pending(self) -> bool:
        """Whether bytes are queued that the consumer has not read."""
        return self._words[self.prod] != self._words[self.cons]

    def room(self) -> int:
        """How many bytes :meth:`write` would take now (0: wait for the consumer)."""
        used = (self._words[self.prod] - self._words[self.cons]) & MASK32
        return max(0, self.size - used)


class Duplex:
    """One end of a page holding a queue each way: this end reads :attr:`_input` and
    writes :attr:`_output` (which is which depends on the side; subclasses set them)."""

    _input: ByteQueue
    _output: ByteQueue

    def read(self, limit: int | None = None) -> bytes:
        """Up to ``limit`` queued input bytes, consumed (the peer may now reuse the room)."""
        return self._input.read(limit)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Queue as much of ``data`` as there is room for; how many bytes that was."""
        return self._output.write(data)

    def input_pending(self) -> bool:
        """Whether the peer has queued bytes we have not read."""
        return self._input.pending()

    def output_room(self) -> int:
        """How many bytes :meth:`write` would take now (0: wait for the peer to read)."""
        return self._output.room()
