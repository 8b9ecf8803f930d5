"""blkfront and blkback as sans-IO engines: block requests through the ``blkif.h`` ring
(:mod:`fata.xen.ring`, :mod:`fata.xen.blkif`) over pages the frontend granted.

**Persistent grants** (``feature-persistent``): the frontend grants a fixed pool of data
pages once, at connect, and every segment names one of them; the backend maps each page
the first time a request names it and keeps it mapped until the device disconnects.  So
a request costs one copy on the frontend (into or out of the pool) and no hypercall on
either side once the pool is warm, where mapping per request would cost two hypercalls
(map, unmap) per segment, which here are round trips to the hypervisor process.

**Indirect descriptors** (``BLKIF_OP_INDIRECT``, ``feature-max-indirect-segments``) as
well as plain requests: a plain request carries at most 11 segments (44 KiB), so a 64 KiB
transfer would take two ring requests and two responses; an indirect request names a
granted page holding up to 512 segments, and the frontend uses one per request that needs
more than 11 segments (up to :data:`FRONT_MAX_SEGMENTS`, 128 KiB), so a 64 KiB transfer is
one request.  Linux's blkback and blkfront both speak it, so the backend must accept it
from any frontend; the frontend falls back to plain requests when the backend does not
offer it.  The indirect pages come from the same persistent pool (one per ring slot).

A :class:`BlkfrontEngine` takes :class:`Operation` s of any size (a read, a write, a flush
or a discard in 512-byte sectors), splits them into ring requests as slots and pool pages
free up, and hands each one back finished once all its requests are answered.  Responses
naming an id that is not in flight are ignored and counted (``bad_responses``); a response
whose operation is not its request's fails that request.

A :class:`BlkbackEngine` trusts nothing in the ring: a gref it was not granted, a segment
with ``first_sect > last_sect`` or ``last_sect > 7``, a read or write with 0 or more than
11 segments (or more indirect segments than it offered), sectors past the end of the disk,
a write to a read-only disk, a read into a page granted read-only: ``BLKIF_RSP_ERROR``;
an operation it does not offer or know: ``BLKIF_RSP_EOPNOTSUPP``.  Every request is parsed
from a private copy (the ring entry, and the indirect page's segments) so a frontend
rewriting shared memory meanwhile changes nothing, and every buffer it hands out is a slice
of a granted page inside that page's bounds.  It does no I/O: :meth:`BlkbackEngine.take`
returns :class:`Io` s (read or write these sectors into or from these slices, make the disk
durable, discard sectors) for its adapter, which reports each with
:meth:`BlkbackEngine.complete`.  Like netback's, it learns pages by reference: a request
naming a page it has not seen is held back (stalled), :meth:`BlkbackEngine.wanted` lists
the references the stalled requests name, the adapter maps them and hands them over with
:meth:`BlkbackEngine.grant` and takes again; once the pool is warm nothing stalls and
nothing is looked at twice.  Impossible ring indexes raise
:class:`~fata.xen.ring.RingError` on either side, for the adapter to disconnect.  Nothing
here touches an event channel, a file or a clock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from fata.xen.blkif import (
    BLKIF_DISCARD_SECURE,
    BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST,
    BLKIF_MAX_SEGMENTS_PER_REQUEST,
    BLKIF_OP_DISCARD,
    BLKIF_OP_FLUSH_DISKCACHE,
    BLKIF_OP_INDIRECT,
    BLKIF_OP_READ,
    BLKIF_OP_WRITE,
    BLKIF_RSP_EOPNOTSUPP,
    BLKIF_RSP_ERROR,
    BLKIF_RSP_OKAY,
    DISCARD,
    INDIRECT,
    REQUEST_HEADER,
    SECTOR_SIZE,
    SEGMENT,
    DiscardRequest,
    Request,
    Response,
    pack_discard,
    pack_request,
    pack_response,
    unpack_response,
)
from fata.xen.hypervisor import MAX_GRANTS
from fata.xen.netchannel import Buffer
from fata.xen.ring import PAGE, BackRing, FrontRing

SECTORS_PER_PAGE = PAGE // SECTOR_SIZE  # 8: a segment's last_sect is at most 7
SEGMENTS_PER_INDIRECT_PAGE = PAGE // SEGMENT.size  # 512
#: Segments of one indirect request the backend accepts (Linux blkback's
#: ``MAX_INDIRECT_SEGMENTS``: 1 MiB), advertised as ``feature-max-indirect-segments``.
MAX_INDIRECT_SEGMENTS = 256
#: Segments the frontend puts in one indirect request at most (128 KiB): twice a 64 KiB
#: transfer, and few enough that a pool of 512 pages keeps 16 such requests in flight.
FRONT_MAX_SEGMENTS = 32
#: The ring layout both ends use, as the frontend's ``protocol`` key names it
#: (``XEN_IO_PROTO_ABI_X86_64``, the native one on the only architecture built for).
PROTOCOL = "x86_64-abi"
_ID_MASK = (1 << 64) - 1
_SEGMENTS_AT = REQUEST_HEADER.size  # 24: where a plain request's segments start
_STATUSES = (BLKIF_RSP_OKAY, BLKIF_RSP_ERROR, BLKIF_RSP_EOPNOTSUPP)
_NO_GREFS = (0,) * (BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST - 1)  # an indirect request's unused


# --- the frontend ------------------------------------------------------------------------

@dataclass(eq=False, slots=True)
class Operation:
    """One request of the Block device's user: ``kind`` is ``BLKIF_OP_READ``, ``_WRITE``,
    ``_FLUSH_DISKCACHE`` or ``_DISCARD``, on ``count`` 512-byte sectors from ``sector``
    (``data``: a write's ``count * 512`` bytes, read when each part is put on the ring, so
    it must not change until the operation is finished).  ``tag`` is the adapter's (what to
    wake).  Once finished, ``status`` is ``BLKIF_RSP_OKAY`` or the first failing part's
    status, and a read's ``result`` holds its bytes."""

    kind: int
    sector: int = 0
    count: int = 0
    data: bytes | bytearray | memoryview | None = None
    tag: object = None
    status: int = BLKIF_RSP_OKAY
    result: bytes = b""
    sent: int = field(default=0, init=False)  # sectors put on the ring so far
    parts: int = field(default=0, init=False)  # ring requests not yet answered
    chunks: list[bytes | None] = field(default_factory=list, init=False)  # a read's parts

    @property
    def queued(self) -> bool:
        """Whether part of it has still to be put on the ring."""
        if self.kind in (BLKIF_OP_READ, BLKIF_OP_WRITE):
            return self.sent < self.count
        return self.sent == 0


@dataclass(slots=True)
class _Part:
    """One ring request of an operation, in flight: what its response must say, the pool
    pages it holds and where its bytes go in the operation's result."""

    op: Operation
    operation: int
    pages: list[Buffer]
    nbytes: int
    chunk: int
    indirect: Buffer | None = None


@dataclass
class FrontCounters:
    requests: int = 0  # ring requests put
    responses: int = 0  # responses that answered one of them
    errors: int = 0  # responses with a status other than OKAY
    bad_responses: int = 0  # responses for no request in flight, or of the wrong operation


class BlkfrontEngine:
    """The guest's side of one vbd's ring.

    ``pool`` are the persistently granted data pages (at least ``max_segments``);
    ``indirect`` the pages for indirect requests' segments, needed when ``max_segments``
    is above 11 (one per ring slot, so that a free slot always has one); ``handle`` is the
    virtual device's number, carried in every request."""

    def __init__(self, ring: FrontRing, pool: Sequence[Buffer], *,
                 indirect: Sequence[Buffer] = (),
                 max_segments: int = BLKIF_MAX_SEGMENTS_PER_REQUEST, handle: int = 0) -> None:
        if not 1 <= max_segments <= SEGMENTS_PER_INDIRECT_PAGE:
            raise ValueError(f"{max_segments} segments per request (1 to "
                             f"{SEGMENTS_PER_INDIRECT_PAGE})")
        if max_segments > BLKIF_MAX_SEGMENTS_PER_REQUEST and not indirect:
            raise ValueError("more than 11 segments per request needs indirect pages")
        if len(pool) < max_segments:
            raise ValueError(f"a pool of {len(pool)} pages cannot hold one request of "
                             f"{max_segments} segments")
        self.ring = ring
        self.max_segments = max_segments
        self.handle = handle & 0xFFFF
        self._free = list(reversed(pool))
        # a whole page's segment, packed once: what most segments of a request are
        self._full_segment = {b.gref: SEGMENT.pack(b.gref, 0, SECTORS_PER_PAGE - 1)
                              for b in pool}
        self._indirect_free = list(reversed(indirect))
        self._queue: deque[Operation] = deque()
        self._inflight: dict[int, _Part] = {}
        self._next_id = 0
        self.counters = FrontCounters()

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing in flight."""
        return not self._queue and not self._inflight

    @property
    def in_flight(self) -> int:
        """Ring requests put and not yet answered."""
        return len(self._inflight)

    def submit(self, op: Operation) -> None:
        """Queue ``op`` (put on the ring by the next :meth:`push`).  A malformed operation
        (the adapter's mistake, not the peer's) is a ValueError."""
        if op.kind in (BLKIF_OP_READ, BLKIF_OP_WRITE):
            if op.count < 1 or op.sector < 0:
                raise ValueError(f"an operation on {op.count} sectors from {op.sector}")
            if op.kind == BLKIF_OP_WRITE and (op.data is None
                                              or len(op.data) != op.count * SECTOR_SIZE):
                raise ValueError(f"a write of {op.count} sectors carries "
                                 f"{op.count * SECTOR_SIZE} bytes")
        elif op.kind == BLKIF_OP_DISCARD:
            if op.count < 1 or op.sector < 0:
                raise ValueError(f"a discard of {op.count} sectors from {op.sector}")
        elif op.kind != BLKIF_OP_FLUSH_DISKCACHE:
            raise ValueError(f"operation {op.kind} is not read, write, flush or discard")
        self._queue.append(op)

    def push(self) -> bool:
        """Put queued operations on the ring while slots and pool pages last (in order: an
        operation waiting for pages holds back those behind it) and publish them; whether
        to notify the backend."""
        queue, ring = self._queue, self.ring
        while queue and ring.free_requests:
            op = queue[0]
            if op.status != BLKIF_RSP_OKAY:  # a part failed: the rest is not sent
                op.sent = op.count if op.kind in (BLKIF_OP_READ, BLKIF_OP_WRITE) else 1
            elif not self._put(op):
                break
            if not op.queued:
                queue.popleft()
        return ring.push_requests()

    def _new_id(self) -> int:
        ident = self._next_id
        self._next_id = (ident + 1) & _ID_MASK
        return ident

    def _put(self, op: Operation) -> bool:
        """Put the next part of ``op`` on the ring; False if the pool has too few pages."""
        ring = self.ring
        if op.kind == BLKIF_OP_FLUSH_DISKCACHE:
            ident = self._new_id()
            pack_request(ring.entries, ring.claim_request(),
                         Request(BLKIF_OP_FLUSH_DISKCACHE, self.handle, ident, 0))
            return self._sent(op, _Part(op, op.kind, [], 0, 0), ident, 1)
        if op.kind == BLKIF_OP_DISCARD:
            ident = self._new_id()
            pack_discard(ring.entries, ring.claim_request(),
                         DiscardRequest(self.handle, ident, op.sector, op.count))
            return self._sent(op, _Part(op, op.kind, [], 0, 0), ident, 1)
        remaining = op.count - op.sent
        nseg = min(-(-remaining // SECTORS_PER_PAGE), self.max_segments)
        if nseg > BLKIF_MAX_SEGMENTS_PER_REQUEST and not self._indirect_free:
            nseg = BLKIF_MAX_SEGMENTS_PER_REQUEST
        free = self._free
        if nseg > len(free):
            return False
        pages = free[-nseg:]
        del free[-nseg:]
        sectors = min(remaining, nseg * SECTORS_PER_PAGE)
        nbytes = sectors * SECTOR_SIZE
        full = self._full_segment
        segments = [full[buffer.gref] for buffer in pages]
        last = (sectors - 1) % SECTORS_PER_PAGE
        if last != SECTORS_PER_PAGE - 1:
            segments[-1] = SEGMENT.pack(pages[-1].gref, 0, last)
        packed = b"".join(segments)
        if op.kind == BLKIF_OP_WRITE:
            assert op.data is not None
            data = memoryview(op.data)
            at = op.sent * SECTOR_SIZE
            end = at + nbytes
            for buffer in pages:
                upto = min(at + PAGE, end)
                buffer.page[:upto - at] = data[at:upto]
                at = upto
        ident = self._new_id()
        entries, slot = ring.entries, ring.claim_request()
        sector = op.sector + op.sent
        indirect = None
        if nseg <= BLKIF_MAX_SEGMENTS_PER_REQUEST:
            REQUEST_HEADER.pack_into(entries, slot, op.kind, nseg, self.handle, ident, sector)
            entries[slot + _SEGMENTS_AT:slot + _SEGMENTS_AT + len(packed)] = packed
        else:
            indirect = self._indirect_free.pop()
            indirect.page[:len(packed)] = packed
            INDIRECT.pack_into(entries, slot, BLKIF_OP_INDIRECT, op.kind, nseg, ident, sector,
                               self.handle, indirect.gref, *_NO_GREFS)
        part = _Part(op, op.kind, pages, nbytes, len(op.chunks), indirect)
        if op.kind == BLKIF_OP_READ:
            op.chunks.append(None)
        return self._sent(op, part, ident, sectors)

    def _sent(self, op: Operation, part: _Part, ident: int, sectors: int) -> bool:
        self._inflight[ident] = part
        op.sent += sectors
        op.parts += 1
        self.counters.requests += 1
        return True

    def complete(self) -> list[Operation]:
        """Take the backend's responses, returning pages to the pool; the operations that
        are finished (every part answered), each with its status and a read's bytes."""
        finished: list[Operation] = []
        for rsp in self.ring.take_responses(unpack_response):
            part = self._inflight.pop(rsp.id, None)
            if part is None:
                self.counters.bad_responses += 1  # an id never sent, or answered already
                continue
            self.counters.responses += 1
            status = rsp.status
            if rsp.operation != part.operation and not (
                    part.indirect is not None and rsp.operation == BLKIF_OP_INDIRECT):
                self.counters.bad_responses += 1
                status = BLKIF_RSP_ERROR
            elif status not in _STATUSES:
                status = BLKIF_RSP_ERROR
            op = part.op
            if status != BLKIF_RSP_OKAY:
                self.counters.errors += 1
                if op.status == BLKIF_RSP_OKAY:
                    op.status = status
            elif op.kind == BLKIF_OP_READ:
                op.chunks[part.chunk] = _gather(part.pages, part.nbytes)
            self._free.extend(part.pages)
            if part.indirect is not None:
                self._indirect_free.append(part.indirect)
            op.parts -= 1
            if op.parts == 0 and (not op.queued or op.status != BLKIF_RSP_OKAY):
                if op.queued:  # a failed operation still queued: drop the rest
                    self._queue.remove(op)
                if op.kind == BLKIF_OP_READ and op.status == BLKIF_RSP_OKAY:
                    chunks = op.chunks
                    op.result = chunks[0] if len(chunks) == 1 else b"".join(chunks)  # type: ignore[arg-type]
                op.chunks = []
                finished.append(op)
        return finished

    def abort(self) -> list[Operation]:
        """The ring is gone (the backend left): every unfinished operation, failed with
        ``BLKIF_RSP_ERROR``; the engine is not to be used again."""
        ops: dict[int, Operation] = {}
        for part in self._inflight.values():
            ops[id(part.op)] = part.op
        for op in self._queue:
            ops[id(op)] = op
        self._inflight.clear()
        self._queue.clear()
        for op in ops.values():
            op.status = BLKIF_RSP_ERROR
            op.chunks = []
        return list(ops.values())


def _gather(pages: list[Buffer], nbytes: int) -> bytes:
    """The first ``nbytes`` of ``pages`` read in order, as one copy."""
    if nbytes <= PAGE:
        return bytes(pages[0].page[:nbytes])
    full, tail = divmod(nbytes, PAGE)
    views = [buffer.page for buffer in pages[:full]]
    if tail:
        views.append(pages[full].page[:tail])
    return b"".join(views)


# --- the backend -------------------------------------------------------------------------

@dataclass(eq=False, slots=True)
class Io:
    """What the adapter does for one request, then reports with
    :meth:`BlkbackEngine.complete`: ``BLKIF_OP_READ`` ``count`` sectors from ``sector`` into
    ``buffers`` (in order, contiguous on the disk), ``BLKIF_OP_WRITE`` them from
    ``buffers`` (and then make the disk durable when ``flush``: a flush request carrying
    data), ``BLKIF_OP_FLUSH_DISKCACHE`` make every completed write durable,
    ``BLKIF_OP_DISCARD`` make ``count`` sectors from ``sector`` read as zeros.  Sectors are
    512 bytes; ``buffers`` are slices of granted pages."""

    kind: int
    sector: int
    count: int
    buffers: list[memoryview]
    id: int
    operation: int  # what the response says
    flush: bool = False


@dataclass
class BackCounters:
    requests: int = 0
    reads: int = 0
    writes: int = 0
    flushes: int = 0
    discards: int = 0
    errors: int = 0  # answered BLKIF_RSP_ERROR (refused, or the I/O failed)
    unsupported: int = 0  # answered BLKIF_RSP_EOPNOTSUPP


class _Refused(Exception):
    """A request answered at once with ``status`` (never leaves the engine)."""

    def __init__(self, status: int = BLKIF_RSP_ERROR) -> None:
        self.status = status


class _Stalled(Exception):
    """A request names a page neither mapped nor refused yet: it waits for the adapter."""


class BlkbackEngine:
    """The backend's side of one vbd's ring, for a disk of ``sectors`` 512-byte sectors.

    ``flush`` and ``discard`` say whether those operations are offered (advertised as
    ``feature-flush-cache`` and ``feature-discard``), ``max_indirect_segments`` how many
    segments an indirect request may carry (0: indirect requests are not offered);
    ``max_grants`` bounds the pages kept mapped (no domain can grant more than the
    hypervisor's ``MAX_GRANTS``)."""

    def __init__(self, ring: BackRing, sectors: int, *, read_only: bool = False,
                 flush: bool = True, discard: bool = True,
                 max_indirect_segments: int = MAX_INDIRECT_SEGMENTS,
                 max_grants: int = MAX_GRANTS) -> None:
        if not 0 <= max_indirect_segments <= (BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST
                                               * SEGMENTS_PER_INDIRECT_PAGE):
            raise ValueError(f"{max_indirect_segments} indirect segments")
        self.ring = ring
        self.sectors = sectors
        self.read_only = read_only
        self.flush = flush
        self.discard = discard and not read_only
        self.max_indirect_segments = max_indirect_segments
        self.max_grants = max_grants
        self.pages: dict[int, memoryview] = {}  # gref -> its page, kept mapped
        self.writable: set[int] = set()  # grefs whose page we may write (reads land there)
        self.refused: set[int] = set()
        self._stalled: list[bytes] = []  # requests taken, waiting for pages to be mapped
        self.counters = BackCounters()

    # -- grants ---------------------------------------------------------------------------

    def wanted(self) -> set[int]:
        """Grefs that the stalled requests name (directly, or in their indirect pages
        mapped already) and that are neither mapped here nor refused: map them (writable
        where the grant allows), :meth:`grant` or :meth:`refuse` each, then :meth:`take`
        again.  Empty once the pool is warm, so it costs nothing then.  Grefs past
        ``max_grants`` mapped are refused at once (no domain can grant that many)."""
        if not self._stalled:
            return set()
        pages, refused = self.pages, self.refused
        named: set[int] = set()
        for raw in self._stalled:
            operation = raw[0]
            if operation == BLKIF_OP_INDIRECT:
                _, _, count, _, _, _, *grefs = INDIRECT.unpack_from(raw)
                count = min(count, self.max_indirect_segments)
                for k, gref in enumerate(grefs[:-(-count // SEGMENTS_PER_INDIRECT_PAGE)]):
                    page = pages.get(gref)
                    if page is None:
                        named.add(gref)
                        continue
                    here = min(count - k * SEGMENTS_PER_INDIRECT_PAGE,
                               SEGMENTS_PER_INDIRECT_PAGE)
                    named.update(g for g, _, _ in SEGMENT.iter_unpack(
                        page[:here * SEGMENT.size]))
            else:  # a read, write or flush (nothing else stalls)
                count = min(raw[1], BLKIF_MAX_SEGMENTS_PER_REQUEST)
                named.update(g for g, _, _ in SEGMENT.iter_unpack(
                    raw[_SEGMENTS_AT:_SEGMENTS_AT + count * SEGMENT.size]))
        out = sorted(gref for gref in named if gref not in pages and gref not in refused)
        room = max(self.max_grants - len(pages), 0)
        for gref in out[room:]:
            self.refuse(gref)
        return set(out[:room])

    def grant(self, gref: int, page: memoryview, writable: bool) -> None:
        """``gref`` is mapped: ``page``, writable here or not."""
        if len(page) != PAGE:
            raise ValueError(f"a granted page is {PAGE} bytes, not {len(page)}")
        if writable and page.readonly:
            raise ValueError(f"grant {gref} is mapped read-only")
        self.pages[gref] = page
        if writable:
            self.writable.add(gref)
        self.refused.discard(gref)

    def refuse(self, gref: int) -> None:
        """``gref`` cannot be mapped: requests naming it are answered with errors (the set
        is forgotten when it grows past ``max_grants``, so a frontend naming ever new grefs
        costs hypercalls, never unbounded memory)."""
        if len(self.refused) >= self.max_grants:
            self.refused.clear()
        self.refused.add(gref)

    def release(self) -> None:
        """Drop every page view (before the mappings are unmapped) and the ring's."""
        self.pages.clear()
        self.writable.clear()
        self.ring.release()

    # -- requests -------------------------------------------------------------------------

    def take(self, *, final: bool = False) -> list[Io]:
        """Consume the waiting requests (after those stalled before): the ones that cannot
        be served are answered now (publish with :meth:`push`); the ones naming a page not
        mapped yet wait, stalled, for :meth:`wanted` to be mapped (or, when ``final``, are
        answered with errors: a frontend whose indirect pages keep naming new pages is
        not chased for ever); the others are returned as I/O to do, each owed a
        :meth:`complete`."""
        out: list[Io] = []
        fresh = self.ring.take_requests()  # private copies of the entries
        self.counters.requests += len(fresh)
        raws, self._stalled = self._stalled + fresh, []
        for raw in raws:
            operation = raw[0]
            ident = int.from_bytes(raw[8:16], "little")  # ``id`` is at 8 in every layout
            try:
                io = self._parse(operation, ident, raw)
            except _Stalled:
                if not final:
                    self._stalled.append(raw)
                    continue
                io = _Refused()
            except _Refused as refusal:
                io = refusal
            if isinstance(io, _Refused):
                reply = operation
                if operation == BLKIF_OP_INDIRECT and raw[1] in (BLKIF_OP_READ, BLKIF_OP_WRITE):
                    reply = raw[1]
                self._answer(ident, reply, io.status)
            elif io is None:  # nothing to do (a discard of no sectors)
                self._answer(ident, operation, BLKIF_RSP_OKAY)
            else:
                out.append(io)
        return out

    def _page(self, gref: int) -> memoryview:
        page = self.pages.get(gref)
        if page is None:
            raise _Refused if gref in self.refused else _Stalled
        return page

    def _parse(self, operation: int, ident: int, raw: bytes) -> Io | None:
        if operation in (BLKIF_OP_READ, BLKIF_OP_WRITE):
            count = raw[1]
            if not 1 <= count <= BLKIF_MAX_SEGMENTS_PER_REQUEST:
                raise _Refused
            return self._rw(operation, operation, ident, raw, _SEGMENTS_AT, count)
        if operation == BLKIF_OP_FLUSH_DISKCACHE:
            if not self.flush:
                raise _Refused(BLKIF_RSP_EOPNOTSUPP)
            count = raw[1]
            if count == 0:
                self.counters.flushes += 1
                return Io(BLKIF_OP_FLUSH_DISKCACHE, 0, 0, [], ident, operation)
            if count > BLKIF_MAX_SEGMENTS_PER_REQUEST:
                raise _Refused
            io = self._rw(operation, BLKIF_OP_WRITE, ident, raw, _SEGMENTS_AT, count,
                          flush=True)
            self.counters.flushes += 1
            return io
        if operation == BLKIF_OP_DISCARD:
            if not self.discard:
                raise _Refused(BLKIF_RSP_ERROR if self.read_only else BLKIF_RSP_EOPNOTSUPP)
            _, flag, _, _, sector, count = DISCARD.unpack_from(raw)
            if flag & BLKIF_DISCARD_SECURE:
                raise _Refused(BLKIF_RSP_EOPNOTSUPP)  # discard-secure is not offered
            if sector + count > self.sectors:
                raise _Refused
            if count == 0:
                return None
            self.counters.discards += 1
            return Io(BLKIF_OP_DISCARD, sector, count, [], ident, operation)
        if operation == BLKIF_OP_INDIRECT and self.max_indirect_segments:
            _, kind, count, _, _, _, *grefs = INDIRECT.unpack_from(raw)
            if kind not in (BLKIF_OP_READ, BLKIF_OP_WRITE):
                raise _Refused
            if not 1 <= count <= self.max_indirect_segments:
                raise _Refused
            npages = -(-count // SEGMENTS_PER_INDIRECT_PAGE)
            pieces = []
            for k, gref in enumerate(grefs[:npages]):
                page = self._page(gref)
                here = min(count - k * SEGMENTS_PER_INDIRECT_PAGE, SEGMENTS_PER_INDIRECT_PAGE)
                pieces.append(bytes(page[:here * SEGMENT.size]))  # a private copy
            return self._rw(kind, kind, ident, b"".join(pieces), 0, count, header=raw)
        raise _Refused(BLKIF_RSP_EOPNOTSUPP)  # barriers, reserved and unknown operations

    def _rw(self, operation: int, kind: int, ident: int, segs: bytes, base: int, count: int,
            *, flush: bool = False, header: bytes | None = None) -> Io:
        """A read or write of ``count`` segments packed in ``segs`` from ``base``, its start
        sector at byte 16 of the request (``header``, when the segments are elsewhere)."""
        if kind == BLKIF_OP_WRITE and self.read_only:
            raise _Refused
        sector = int.from_bytes((header or segs)[16:24], "little")
        pages, writable = self.pages, self.writable
        buffers: list[memoryview] = []
        total = 0
        for gref, first, last in SEGMENT.iter_unpack(segs[base:base + count * SEGMENT.size]):
            if first > last or last >= SECTORS_PER_PAGE:
                raise _Refused
            page = pages.get(gref)
            if page is None:
                page = self._page(gref)
            if kind == BLKIF_OP_READ and gref not in writable:
                raise _Refused
            buffers.append(page[first * SECTOR_SIZE:(last + 1) * SECTOR_SIZE]
                           if first or last != SECTORS_PER_PAGE - 1 else page)
            total += last - first + 1
        if sector + total > self.sectors:
            raise _Refused
        if kind == BLKIF_OP_READ:
            self.counters.reads += 1
        else:
            self.counters.writes += 1
        return Io(kind, sector, total, buffers, ident, operation, flush)

    def _answer(self, ident: int, operation: int, status: int) -> None:
        if status == BLKIF_RSP_ERROR:
            self.counters.errors += 1
        elif status == BLKIF_RSP_EOPNOTSUPP:
            self.counters.unsupported += 1
        ring = self.ring
        pack_response(ring.entries, ring.claim_response(), Response(ident, operation, status))

    def complete(self, io: Io, status: int = BLKIF_RSP_OKAY) -> None:
        """``io`` is done (``BLKIF_RSP_ERROR``: it failed); its response is put (publish
        with :meth:`push`) and its page views dropped."""
        io.buffers = []
        self._answer(io.id, io.operation, status)

    def push(self) -> bool:
        """Publish the responses put so far; whether to notify the frontend."""
        return self.ring.push_responses()
