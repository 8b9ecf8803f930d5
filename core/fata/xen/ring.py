"""Xen's shared request/response rings (``xen/io/ring.h``), byte-compatible with the C
macros, as sans-IO views over a shared buffer: a :class:`FrontRing` puts requests and takes
responses, a :class:`BackRing` takes requests and puts responses.  netfront/netback's tx and
rx rings and blkfront/blkback's ring are all this one ABI with different entries
(:mod:`fata.xen.netif`, :mod:`fata.xen.blkif`); nothing here knows an entry's fields.

Layout (``struct <name>_sring``, checked against gcc on the real header): the ``uint32``
indexes ``req_prod req_event rsp_prod rsp_event`` at 0, 4, 8, 12, the 4-byte ``pvt`` union
at 16 and 44 bytes of padding, so the entries start at byte 64.  An entry is the union of
request and response, ``max(sizeof req, sizeof rsp)`` bytes; a ring of ``ring_bytes``
(4096 per page) holds ``(ring_bytes - 64) // entry_size`` rounded down to a power of two
(``__CONST_RING_SIZE``), and index ``i`` lives in entry ``i & (size - 1)``.

Indexes are free-running 32-bit counters wrapping mod 2**32: each side keeps its private
producer and consumer (the front's ``req_prod_pvt``/``rsp_cons``, the back's
``rsp_prod_pvt``/``req_cons``) and publishes only its producer and the event index it wants
to be woken at.  A response reuses the slot of the request it answers, so the front may
have at most ``size`` requests unanswered (:attr:`FrontRing.free_requests`).

Notification hold-off (the header's long comment): a consumer that has drained the ring
sets its event index to ``cons + 1`` (``RING_FINAL_CHECK_FOR_*``) and rechecks; a producer
that moves its index from ``old`` to ``new`` notifies exactly when the event index is in
``(old, new]``, i.e. ``(new - event) < (new - old)`` in uint32 arithmetic
(``RING_PUSH_*_AND_CHECK_NOTIFY``).  The methods return that decision; notifying the event
channel is the caller's.

Ordering: each shared index is one aligned 4-byte store or load through a ``uint32`` view
(never a byte-wise pack a peer could see half of; aligned because the buffer starts on a
page, as a mapping does), stored after the entries it publishes and loaded before the
entries it covers. On x86-64, the only architecture this is built for, stores are seen in
program order and loads are not reordered with older loads, so those are the header's
``xen_wmb``/``xen_rmb``. The header's ``xen_mb`` (store the producer, *then* load the
peer's event index; store our event index, *then* load the peer's producer) is a
store-load ordering that x86 does not give for free: a load may be satisfied while the
older store still sits in the store buffer, and then both sides could miss each other's
update and sleep forever. Python cannot emit ``mfence``, so :func:`full_barrier` acquires
and releases a private ``threading.Lock``: CPython's lock is a glibc semaphore (or a
mutex), whose ``sem_trywait``/``sem_post`` are ``lock cmpxchg``, and a locked
read-modify-write is a full barrier on x86-64.

A peer's impossible indexes (more responses than requests outstanding, more requests than
the ring holds, a producer that went backwards) raise :class:`RingError`: the check is the
header's ``RING_REQUEST_PROD_OVERFLOW``/``RING_RESPONSE_PROD_OVERFLOW`` tightened so that
every index the peer can show us either is possible or is refused, and nothing is ever read
beyond what the peer may have produced.
"""

from __future__ import annotations

import mmap
import platform
import threading
from collections.abc import Callable, Iterable
from typing import TypeAlias, TypeVar, overload

SHARED_HEADER = 64  # offsetof(struct <name>_sring, ring) on x86-64
REQ_PROD, REQ_EVENT, RSP_PROD, RSP_EVENT = range(4)  # uint32 words of the header
PVT_OFFSET, PVT_SIZE = 16, 4
PAD_OFFSET, PAD_SIZE = 20, 44
PAGE = 4096
MASK32 = 0xFFFFFFFF

T = TypeVar("T")
Decoder: TypeAlias = Callable[[memoryview, int], T]
#: What a ring lives in: a mapping of the shared page(s), or any writable buffer.
Shared: TypeAlias = mmap.mmap | bytearray | memoryview
#: One entry's bytes to copy in.
Data: TypeAlias = bytes | bytearray | memoryview

if platform.machine() not in ("x86_64", "AMD64"):  # pragma: no cover - other hardware
    raise ImportError("fata.xen.ring relies on x86-64 memory ordering (no other fences)")


class RingError(Exception):
    """The peer's indexes are impossible: the ring cannot be trusted any more."""


class RingFull(Exception):
    """No free request slot: the front must wait for responses (``RING_FULL``)."""


_barrier_lock = threading.Lock()


def full_barrier() -> None:
    """``xen_mb()``: the stores before this are visible to the peer before the loads after
    it are performed (two ``lock cmpxchg`` inside glibc, see the module docstring)."""
    _barrier_lock.acquire()
    _barrier_lock.release()


def ring_size(ring_bytes: int, entry_size: int) -> int:
    """``__CONST_RING_SIZE``: how many ``entry_size``-byte entries fit after the header in
    ``ring_bytes``, rounded down to a power of two (``__RD32``), so an index is masked."""
    if entry_size <= 0:
        raise ValueError("an entry has a positive size")
    fit = (ring_bytes - SHARED_HEADER) // entry_size
    if fit < 1:
        raise ValueError(f"{ring_bytes} bytes hold no {entry_size}-byte ring entry")
    return 1 << (min(fit, MASK32).bit_length() - 1)


def notify_needed(old: int, new: int, event: int) -> bool:
    """The ``_AND_CHECK_NOTIFY`` decision: moving a producer from ``old`` to ``new`` passes
    the consumer's ``event`` index, i.e. ``(new - event) < (new - old)`` mod 2**32."""
    return ((new - event) & MASK32) < ((new - old) & MASK32)


class _Ring:
    """What both ends share: the geometry and the views of one ``<name>_sring``."""

    def __init__(self, shared: Shared, entry_size: int, ring_bytes: int | None) -> None:
        view = memoryview(shared)
        if view.readonly:
            raise ValueError("a shared ring must be writable")
        view = view.cast("B")
        if ring_bytes is None:
            ring_bytes = len(view)
        if ring_bytes > len(view):
            raise ValueError(f"the buffer has {len(view)} bytes, not {ring_bytes}")
        self.size = ring_size(ring_bytes, entry_size)
        self.entry_size = entry_size
        self._mask = self.size - 1
        self._bytes = view[:ring_bytes]
        self._words = self._bytes[:SHARED_HEADER].cast("I")
        #: The entries, ``size * entry_size`` bytes; an index's entry is at :meth:`offset`.
        self.entries = self._bytes[SHARED_HEADER:SHARED_HEADER + self.size * entry_size]

    def offset(self, index: int) -> int:
        """Where index ``index``'s entry starts in :attr:`entries` (for ``pack_into`` /
        ``unpack_from`` of the entry's struct)."""
        return (index & self._mask) * self.entry_size

    @property
    def shared_indexes(self) -> tuple[int, int, int, int]:
        """``req_prod, req_event, rsp_prod, rsp_event`` as the shared page has them now."""
        w = self._words
        return w[REQ_PROD], w[REQ_EVENT], w[RSP_PROD], w[RSP_EVENT]

    def _take(self, start: int, count: int, decode: Decoder[T] | None) -> list[T] | list[bytes]:
        """Copies (or decodings) of ``count`` entries from index ``start``: a local copy,
        so a peer rewriting a slot later changes nothing we already read."""
        entries, size, esz = self.entries, self._mask + 1, self.entry_size
        first = start & self._mask
        if decode is None:
            end = first + count
            if end <= size:
                block = entries[first * esz:end * esz]
                return [bytes(block[i:i + esz]) for i in range(0, count * esz, esz)]
            out = [bytes(entries[i:i + esz]) for i in range(first * esz, size * esz, esz)]
            out += [bytes(entries[i:i + esz]) for i in range(0, (end - size) * esz, esz)]
            return out
        mask = self._mask
        return [decode(entries, ((first + i) & mask) * esz) for i in range(count)]

    def _put(self, index: int, data: Data) -> None:
        raw = memoryview(data).cast("B")
        if len(raw) > self.entry_size:
            raise ValueError(f"{len(raw)} bytes do not fit a {self.entry_size}-byte entry")
        at = (index & self._mask) * self.entry_size
        self.entries[at:at + len(raw)] = raw

    def release(self) -> None:
        """Drop the views so the shared mapping can be closed."""
        self.entries.release()
        self._words.release()
        self._bytes.release()


class FrontRing(_Ring):
    """The front end (netfront, blkfront): puts requests, takes responses.

    ``FrontRing(shared, entry_size)`` is ``XEN_FRONT_RING_INIT``: the front initialises
    the shared ring (``SHARED_RING_INIT``: both producers 0, both event indexes 1, ``pvt``
    and padding zeroed) before the back attaches.  ``start`` runs the same with every index
    at ``start`` (events at ``start + 1``); ``attach=True`` is ``FRONT_RING_ATTACH``: join
    a live ring at ``start`` without writing it.  ``ring_bytes`` is the ring's size when the
    buffer is larger (default: the whole buffer, 4096 bytes per ring page)."""

    def __init__(self, shared: Shared, entry_size: int, *, ring_bytes: int | None = None,
                 start: int = 0, attach: bool = False) -> None:
        super().__init__(shared, entry_size, ring_bytes)
        start &= MASK32
        if not attach:
            self._bytes[PVT_OFFSET:SHARED_HEADER] = bytes(SHARED_HEADER - PVT_OFFSET)
            w = self._words
            w[REQ_PROD] = w[RSP_PROD] = start
            w[REQ_EVENT] = w[RSP_EVENT] = (start + 1) & MASK32
        self.req_prod_pvt = start
        self.rsp_cons = start
        self._pushed = start  # what we last stored in req_prod (ours alone to write)

    # -- requests ------------------------------------------------------------------------

    @property
    def free_requests(self) -> int:
        """``RING_FREE_REQUESTS``: slots not holding an unanswered or unread request."""
        return self.size - ((self.req_prod_pvt - self.rsp_cons) & MASK32)

    @property
    def full(self) -> bool:
        """``RING_FULL``: no request can be put until responses are taken."""
        return self.free_requests == 0

    def claim_request(self) -> int:
        """The offset in :attr:`entries` of a new request's slot (``RING_GET_REQUEST`` at
        ``req_prod_pvt``, then ``req_prod_pvt++``): pack the request there, then push.
        Raises :class:`RingFull` when the ring has no free slot."""
        if self.free_requests == 0:
            raise RingFull(f"all {self.size} slots hold requests awaiting responses")
        index = self.req_prod_pvt
        self.req_prod_pvt = (index + 1) & MASK32
        return (index & self._mask) * self.entry_size

    def put_request(self, data: Data) -> None:
        """Copy one request (at most ``entry_size`` bytes) into the next slot."""
        if self.free_requests == 0:
            raise RingFull(f"all {self.size} slots hold requests awaiting responses")
        self._put(self.req_prod_pvt, data)
        self.req_prod_pvt = (self.req_prod_pvt + 1) & MASK32

    def put_requests(self, requests: Iterable[Data]) -> int:
        """Put requests while there is room; how many were put (the rest wait)."""
        put = 0
        room = self.free_requests
        for data in requests:
            if put == room:
                break
            self._put(self.req_prod_pvt, data)
            self.req_prod_pvt = (self.req_prod_pvt + 1) & MASK32
            put += 1
        return put

    def push_requests(self) -> bool:
        """``RING_PUSH_REQUESTS_AND_CHECK_NOTIFY``: publish the requests put so far (one
        store of ``req_prod``, after them); whether the back must be notified."""
        old, new = self._pushed, self.req_prod_pvt
        if old == new:
            return False
        self._words[REQ_PROD] = new
        self._pushed = new
        full_barrier()  # the back sees req_prod before we look at req_event
        return notify_needed(old, new, self._words[REQ_EVENT])

    # -- responses -----------------------------------------------------------------------

    def unconsumed_responses(self) -> int:
        """``RING_HAS_UNCONSUMED_RESPONSES``: responses the back has pushed that we have
        not taken.  Raises :class:`RingError` if that is more than we have requests out
        (the back answered requests we never made, or moved ``rsp_prod`` backwards)."""
        prod = self._words[RSP_PROD]
        cons = self.rsp_cons
        ready = (prod - cons) & MASK32
        if ready > ((self.req_prod_pvt - cons) & MASK32):
            raise RingError(
                f"rsp_prod {prod} is {ready} responses past rsp_cons {cons}, but only "
                f"{(self.req_prod_pvt - cons) & MASK32} requests are outstanding")
        return ready

    @overload
    def take_responses(self, decode: None = None, limit: int | None = None) -> list[bytes]: ...

    @overload
    def take_responses(self, decode: Decoder[T], limit: int | None = None) -> list[T]: ...

    def take_responses(self, decode: Decoder[T] | None = None,
                       limit: int | None = None) -> list[T] | list[bytes]:
        """Every unconsumed response (at most ``limit``), consumed: each entry's bytes, or
        ``decode(entries, offset)`` of it (a struct's ``unpack_from``); ``rsp_cons``
        advances past them, so their slots may carry new requests."""
        ready = self.unconsumed_responses()
        if limit is not None:
            ready = min(ready, limit)
        if not ready:
            return []
        out = self._take(self.rsp_cons, ready, decode)
        self.rsp_cons = (self.rsp_cons + ready) & MASK32
        return out

    def final_check_for_responses(self) -> bool:
        """``RING_FINAL_CHECK_FOR_RESPONSES``: before sleeping, ask to be notified at the
        very next response (``rsp_event = rsp_cons + 1``) and look once more; True means
        responses are waiting, so do not sleep."""
        if self.unconsumed_responses():
            return True
        self._words[RSP_EVENT] = (self.rsp_cons + 1) & MASK32
        full_barrier()  # the back sees rsp_event before we look at rsp_prod again
        return self.unconsumed_responses() > 0

    def set_response_event(self, event: int) -> None:
        """Ask to be notified only when the back's ``rsp_prod`` passes ``event`` (batching
        wake-ups; the customised FINAL_CHECK the header mentions).  Recheck afterwards."""
        self._words[RSP_EVENT] = event & MASK32
        full_barrier()


class BackRing(_Ring):
    """The back end (netback, blkback): takes requests, puts responses.

    ``BackRing(shared, entry_size)`` is ``BACK_RING_INIT``: it never initialises the shared
    ring (the front did); ``start`` is ``BACK_RING_ATTACH``'s index."""

    def __init__(self, shared: Shared, entry_size: int, *, ring_bytes: int | None = None,
                 start: int = 0) -> None:
        super().__init__(shared, entry_size, ring_bytes)
        start &= MASK32
        self.rsp_prod_pvt = start
        self.req_cons = start
        self._pushed = start  # what we last stored in rsp_prod

    # -- requests ------------------------------------------------------------------------

    def unconsumed_requests(self) -> int:
        """``RING_HAS_UNCONSUMED_REQUESTS``: requests pushed and not taken, bounded as the
        header bounds them by the response slots free (``RING_REQUEST_CONS_OVERFLOW``).
        Raises :class:`RingError` if the front's ``req_prod`` is impossible: more requests
        than the ring holds beyond our last response (``RING_REQUEST_PROD_OVERFLOW``), or
        behind what we already consumed."""
        prod = self._words[REQ_PROD]
        ahead = (prod - self.rsp_prod_pvt) & MASK32  # requests not yet answered
        busy = (self.req_cons - self.rsp_prod_pvt) & MASK32  # taken, not yet answered
        if ahead > self.size or ahead < busy:
            raise RingError(
                f"req_prod {prod} is impossible: req_cons is {self.req_cons}, rsp_prod_pvt "
                f"{self.rsp_prod_pvt} and the ring holds {self.size} requests")
        return min((prod - self.req_cons) & MASK32, self.size - busy)

    @overload
    def take_requests(self, decode: None = None, limit: int | None = None) -> list[bytes]: ...

    @overload
    def take_requests(self, decode: Decoder[T], limit: int | None = None) -> list[T]: ...

    def take_requests(self, decode: Decoder[T] | None = None,
                      limit: int | None = None) -> list[T] | list[bytes]:
        """Every unconsumed request (at most ``limit``), consumed (``RING_COPY_REQUEST``
        each, then ``req_cons`` past them): each entry's bytes, or ``decode(entries,
        offset)`` of it.  Each taken request is owed a response, in order."""
        ready = self.unconsumed_requests()
        if limit is not None:
            ready = min(ready, limit)
        if not ready:
            return []
        out = self._take(self.req_cons, ready, decode)
        self.req_cons = (self.req_cons + ready) & MASK32
        return out

    def final_check_for_requests(self) -> bool:
        """``RING_FINAL_CHECK_FOR_REQUESTS``: before sleeping, ask to be notified at the
        very next request (``req_event = req_cons + 1``) and look once more; True means
        requests are waiting, so do not sleep."""
        if self.unconsumed_requests():
            return True
        self._words[REQ_EVENT] = (self.req_cons + 1) & MASK32
        full_barrier()  # the front sees req_event before we look at req_prod again
        return self.unconsumed_requests() > 0

    def set_request_event(self, event: int) -> None:
        """Ask to be notified only when the front's ``req_prod`` passes ``event``."""
        self._words[REQ_EVENT] = event & MASK32
        full_barrier()

    # -- responses -----------------------------------------------------------------------

    @property
    def responses_owed(self) -> int:
        """Requests taken and not yet answered: how many responses may be put now."""
        return (self.req_cons - self.rsp_prod_pvt) & MASK32

    def claim_response(self) -> int:
        """The offset in :attr:`entries` of the next response's slot (``RING_GET_RESPONSE``
        at ``rsp_prod_pvt``, then ``rsp_prod_pvt++``): the slot of the oldest request
        taken and unanswered, which we have read already."""
        if self.req_cons == self.rsp_prod_pvt:
            raise ValueError("no request taken is waiting for a response")
        index = self.rsp_prod_pvt
        self.rsp_prod_pvt = (index + 1) & MASK32
        return (index & self._mask) * self.entry_size

    def put_response(self, data: Data) -> None:
        """Copy one response (at most ``entry_size`` bytes) into the next slot."""
        if self.req_cons == self.rsp_prod_pvt:
            raise ValueError("no request taken is waiting for a response")
        self._put(self.rsp_prod_pvt, data)
        self.rsp_prod_pvt = (self.rsp_prod_pvt + 1) & MASK32

    def push_responses(self) -> bool:
        """``RING_PUSH_RESPONSES_AND_CHECK_NOTIFY``: publish the responses put so far (one
        store of ``rsp_prod``, after them); whether the front must be notified."""
        old, new = self._pushed, self.rsp_prod_pvt
        if old == new:
            return False
        self._words[RSP_PROD] = new
        self._pushed = new
        full_barrier()  # the front sees rsp_prod before we look at rsp_event
        return notify_needed(old, new, self._words[RSP_EVENT])
