"""The xenstore ring (``struct xenstore_domain_interface``, Xen's
``docs/misc/xenstore-ring.txt``): one 4 KiB page holding a request and a response byte
queue with free-running indexes, the server's feature bits, and the connection and error
fields.  Sans-IO: an :class:`XsRing` is one end's view of a shared buffer, bytes in and out;
the caller notifies the event channel whenever a call says the ring moved.

Layout (byte offsets): requests 0..1024, responses 1024..2048, then the ``uint32`` fields
``req_cons req_prod rsp_cons rsp_prod server_features connection error`` from 2048.  A byte
at stream offset ``x`` lives at ``x % 1024``; ``prod - cons`` (mod 2**32) is what is queued
and is never more than 1024, else the peer broke the ring (``XENSTORE_ERROR_RINGIDX``).

Ordering: each index is one aligned 4-byte store through a ``uint32`` view (never a
byte-wise pack a peer could see half of), written after the data it publishes and read
before the data it covers; on x86-64, the only architecture this is built for, stores are
seen in program order, so that is the write barrier the header's ``xen_wmb`` asks for.
"""

from __future__ import annotations

import platform

from fata.xen.xs_wire import FEATURE_ERROR, FEATURE_RECONNECTION

RING_SIZE = 1024
MASK = RING_SIZE - 1
PAGE = 4096
REQ, RSP = 0, RING_SIZE
REQ_CONS, REQ_PROD, RSP_CONS, RSP_PROD, FEATURES, CONNECTION, ERROR = range(512, 519)

CONNECTED, RECONNECT = 0, 1
ERROR_NONE, ERROR_COMM, ERROR_RINGIDX, ERROR_PROTO = 0, 1, 2, 3

if platform.machine() not in ("x86_64", "AMD64"):  # pragma: no cover - other hardware
    raise ImportError("fata.xen.xs_ring relies on x86-64 store ordering (no fences yet)")


class RingError(Exception):
    """The peer's indexes are impossible: the ring cannot be trusted any more."""


class XsRing:
    """One end of a xenstore ring: the server consumes requests and produces responses,
    a guest the reverse.  ``page`` is the shared page (at least 4 KiB, writable)."""

    def __init__(self, page: memoryview | bytearray, *, server: bool) -> None:
        self._bytes = memoryview(page)[:PAGE]
        if len(self._bytes) < PAGE:
            raise ValueError("a xenstore ring is a 4096-byte page")
        self._words = self._bytes.cast("I")
        self.server = server
        if server:
            self._in, self._in_cons, self._in_prod = REQ, REQ_CONS, REQ_PROD
            self._out, self._out_cons, self._out_prod = RSP, RSP_CONS, RSP_PROD
        else:
            self._in, self._in_cons, self._in_prod = RSP, RSP_CONS, RSP_PROD
            self._out, self._out_cons, self._out_prod = REQ, REQ_CONS, REQ_PROD

    # -- the byte queues -----------------------------------------------------------------

    def read(self, limit: int = RING_SIZE) -> bytes:
        """Up to ``limit`` queued input bytes, consumed (the peer may now reuse the room)."""
        words = self._words
        cons = words[self._in_cons]
        queued = (words[self._in_prod] - cons) & 0xFFFFFFFF
        if queued > RING_SIZE:
            raise RingError(f"input indexes are {queued} bytes apart (at most {RING_SIZE})")
        n = min(queued, limit)
        if not n:
            return b""
        start = cons & MASK
        first = min(n, RING_SIZE - start)
        base = self._in
        data = bytes(self._bytes[base + start:base + start + first])
        if first < n:
            data += bytes(self._bytes[base:base + n - first])
        words[self._in_cons] = (cons + n) & 0xFFFFFFFF
        return data

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Queue as much of ``data`` as there is room for; how many bytes that was."""
        words = self._words
        prod = words[self._out_prod]
        used = (prod - words[self._out_cons]) & 0xFFFFFFFF
        if used > RING_SIZE:
            raise RingError(f"output indexes are {used} bytes apart (at most {RING_SIZE})")
        n = min(len(data), RING_SIZE - used)
        if not n:
            return 0
        start = prod & MASK
        first = min(n, RING_SIZE - start)
        base = self._out
        view = memoryview(data)
        self._bytes[base + start:base + start + first] = view[:first]
        if first < n:
            self._bytes[base:base + n - first] = view[first:n]
        words[self._out_prod] = (prod + n) & 0xFFFFFFFF  # after the data: the publish
        return n

    def input_pending(self) -> bool:
        """Whether the peer has queued bytes we have not read."""
        return self._words[self._in_prod] != self._words[self._in_cons]

    def output_room(self) -> int:
        return RING_SIZE - ((self._words[self._out_prod] - self._words[self._out_cons])
                            & 0xFFFFFFFF)

    # -- the signalling fields -----------------------------------------------------------

    @property
    def features(self) -> int:
        return self._words[FEATURES]

    @property
    def connection(self) -> int:
        return self._words[CONNECTION]

    @property
    def error(self) -> int:
        return self._words[ERROR]

    def advertise(self, features: int = FEATURE_RECONNECTION | FEATURE_ERROR) -> None:
        """Server: offer ``features`` (reconnection and the error field unless the
        toolstack chose fewer), before any data moves."""
        self._server_only()
        self._words[ERROR] = ERROR_NONE
        self._words[FEATURES] = features

    def fail(self, error: int) -> None:
        """Server: say why we stopped talking on this ring."""
        self._server_only()
        self._words[ERROR] = error

    def reset(self) -> None:
        """Server, on the guest's reconnect request: both queues empty, then connected."""
        self._server_only()
        for index in (REQ_CONS, REQ_PROD, RSP_CONS, RSP_PROD):
            self._words[index] = 0
        self._words[ERROR] = ERROR_NONE
        self._words[CONNECTION] = CONNECTED  # last: the guest may use the ring again

    def request_reconnect(self) -> None:
        """Guest: ask the server to reset the ring (wait for ``connection`` to be 0)."""
        if self.server:
            raise ValueError("only the guest asks for a reconnection")
        if not self.features & FEATURE_RECONNECTION:
            raise RingError("the server does not offer ring reconnection")
        self._words[CONNECTION] = RECONNECT

    def _server_only(self) -> None:
        if not self.server:
            raise ValueError("only the server writes the signalling fields")

    def release(self) -> None:
        """Drop the views so the page's mapping can be closed."""
        self._words.release()
        self._bytes.release()
