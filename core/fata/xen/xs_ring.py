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

from fata.xen.byte_queue import ByteQueue, Duplex
from fata.xen.ring import RingError
from fata.xen.xs_wire import FEATURE_ERROR, FEATURE_RECONNECTION

__all__ = ["RingError", "XsRing"]

RING_SIZE = 1024
MASK = RING_SIZE - 1
PAGE = 4096
REQ, RSP = 0, RING_SIZE
REQ_CONS, REQ_PROD, RSP_CONS, RSP_PROD, FEATURES, CONNECTION, ERROR = range(512, 519)

CONNECTED, RECONNECT = 0, 1
ERROR_NONE, ERROR_COMM, ERROR_RINGIDX, ERROR_PROTO = 0, 1, 2, 3

if platform.machine() not in ("x86_64", "AMD64"):  # pragma: no cover - other hardware
    raise ImportError("fata.xen.xs_ring relies on x86-64 store ordering (no fences yet)")


class XsRing(Duplex):
    """One end of a xenstore ring: the server consumes requests and produces responses,
    a guest the reverse.  ``page`` is the shared page (at least 4 KiB, writable)."""

    def __init__(self, page: memoryview | bytearray, *, server: bool) -> None:
        self._bytes = memoryview(page)[:PAGE]
        if len(self._bytes) < PAGE:
            raise ValueError("a xenstore ring is a 4096-byte page")
        self._words = self._bytes.cast("I")
        self.server = server
        requests = ByteQueue(self._bytes, self._words, REQ, RING_SIZE, REQ_CONS, REQ_PROD,
                             "request")
        responses = ByteQueue(self._bytes, self._words, RSP, RING_SIZE, RSP_CONS, RSP_PROD,
                              "response")
        self._input, self._output = (requests, responses) if server else (responses, requests)

    # -- the signalling fields (the byte queues are Duplex's) --------------------------

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
