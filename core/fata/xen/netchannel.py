"""netfront and netback as sans-IO engines: frames in and out of the two ``netif.h`` rings
(:mod:`fata.xen.ring`, :mod:`fata.xen.netif`), over pages the frontend granted.

The frontend owns one page per ring slot for each direction, granted once at connect (read
only to the backend for tx, writable for rx), so a frame costs one copy on each side and no
hypercall: persistent grants, as Linux's blkfront and netfront's ``feature-rx-copy`` model
them with a copy into the guest's own page.  A frame longer than a page takes several slots
linked by ``more_data``: on tx the first request's ``size`` is the whole frame's and each
later one its own fragment's (``netif.h``); on rx each response says its own length.

:class:`NetfrontEngine` is the guest's side; :class:`NetbackEngine` the backend's, which
trusts nothing in the rings: a request naming a page it was not granted, a fragment past
its page, a packet whose sizes do not add up or that runs over ``MAX_SLOTS`` is answered
``NETIF_RSP_ERROR`` and dropped, an rx id the backend never saw is refused by the
frontend, and impossible ring indexes raise :class:`~fata.xen.ring.RingError` for the
adapter to disconnect.  The backend learns pages by grant reference: :meth:`wanted` lists
the references waiting requests name that it has not resolved yet, its adapter maps them
(an asynchronous hypercall) and hands them to :meth:`grant`, or :meth:`refuse` s them.
Every method returns whether the peer must be notified; nothing here touches an event
channel, a clock or a socket.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from fata.xen.netif import (
    EXTRA_GSO,
    NETIF_RSP_ERROR,
    NETIF_RSP_NULL,
    NETIF_RSP_OKAY,
    RX_REQUEST,
    RX_RESPONSE,
    TX_REQUEST,
    TX_RESPONSE,
    XEN_NETIF_EXTRA_FLAG_MORE,
    XEN_NETIF_EXTRA_TYPE_GSO,
    XEN_NETIF_GSO_TYPE_TCPV4,
    XEN_NETIF_MAX_TX_SIZE,
    XEN_NETIF_NR_SLOTS_MIN,
    NETRXF_more_data,
    NETTXF_csum_blank,
    NETTXF_data_validated,
    NETTXF_extra_info,
    NETTXF_more_data,
    TxRequest,
)
from fata.xen.ring import MASK32, PAGE, BackRing, FrontRing

MAX_SLOTS = XEN_NETIF_NR_SLOTS_MIN  # slots of one packet we accept (every backend must)


@dataclass(frozen=True, slots=True)
class Buffer:
    """One granted page of the frontend: its grant reference and the page itself."""

    gref: int
    page: memoryview


@dataclass(frozen=True, slots=True)
class Offloaded:
    """A frame the guest left work in for the device: its L4 checksum to finish, and when
    ``gso_size`` is set, to be cut into TCP segments of that payload (``gso_type`` a
    ``XEN_NETIF_GSO_TYPE_*``)."""

    frame: bytes
    gso_size: int
    gso_type: int


@dataclass
class Counters:
    frames: int = 0
    errors: int = 0
    drops: int = 0


class NetfrontEngine:
    """The guest's side: ``tx_buffers[i]`` is the page of tx id ``i``, ``rx_buffers[i]``
    that of rx id ``i``; there should be one per slot of each ring."""

    def __init__(self, tx: FrontRing, rx: FrontRing, tx_buffers: Sequence[Buffer],
                 rx_buffers: Sequence[Buffer]) -> None:
        self.tx, self.rx = tx, rx
        self._tx_buffers, self._rx_buffers = list(tx_buffers), list(rx_buffers)
        self._tx_free = list(range(len(tx_buffers) - 1, -1, -1))
        self._tx_outstanding: set[int] = set()  # ids sent and not yet answered
        self._rx_posted: set[int] = set()
        self._rx_idle = list(range(len(rx_buffers)))  # ids not offered to the backend
        self._rx_partial: list[bytes] = []
        self.sent, self.received = Counters(), Counters()

    # -- tx ---------------------------------------------------------------------------

    def send(self, frame: bytes | bytearray | memoryview, *, csum_blank: bool = False,
             gso_size: int = 0, gso_type: int = XEN_NETIF_GSO_TYPE_TCPV4) -> bool:
        """Queue one frame on the tx ring (copied into its pages); False when there is no
        room (the frame is dropped and counted), as a full NIC queue drops.  With
        ``csum_blank`` its L4 checksum holds only the pseudo-header's sum, for the backend
        to finish; with ``gso_size`` it is one TCP segment larger than the MTU, for the
        backend to cut into ``gso_size``-byte ones (an extra-info slot says so)."""
        size = len(frame)
        slots = max(1, -(-size // PAGE))
        extra = 1 if gso_size else 0
        if size > XEN_NETIF_MAX_TX_SIZE or slots > MAX_SLOTS:
            self.sent.errors += 1
            return False
        if slots > len(self._tx_free) or slots + extra > self.tx.free_requests:
            self.sent.drops += 1
            return False
        entries, claim, pack = self.tx.entries, self.tx.claim_request, TX_REQUEST.pack_into
        offload = (NETTXF_csum_blank | NETTXF_data_validated if csum_blank else 0) | (
            NETTXF_extra_info if extra else 0)
        if slots == 1 and not extra:  # the common case, without slicing
            ident = self._tx_free.pop()
            self._tx_outstanding.add(ident)
            buffer = self._tx_buffers[ident]
            buffer.page[:size] = frame
            pack(entries, claim(), buffer.gref, 0, offload, ident, size)
            self.sent.frames += 1
            return True
        view = memoryview(frame)
        for n in range(slots):
            ident = self._tx_free.pop()
            self._tx_outstanding.add(ident)
            buffer = self._tx_buffers[ident]
            chunk = view[n * PAGE:(n + 1) * PAGE]
            buffer.page[:len(chunk)] = chunk
            more = 0 if n == slots - 1 else NETTXF_more_data
            pack(entries, claim(), buffer.gref, 0, more | (offload if n == 0 else 0), ident,
                 size if n == 0 else len(chunk))
            if n == 0 and extra:  # the extra-info slot follows the first request
                EXTRA_GSO.pack_into(entries, claim(), XEN_NETIF_EXTRA_TYPE_GSO, 0,
                                    gso_size, gso_type, 0)
        self.sent.frames += 1
        return True

    def push(self) -> bool:
        """Publish the frames queued; whether to notify the backend."""
        return self.tx.push_requests()

    def tx_completed(self) -> int:
        """Take the backend's tx responses, freeing their pages; how many slots."""
        done = 0
        outstanding, free = self._tx_outstanding, self._tx_free
        for ident, status in self.tx.take_responses(TX_RESPONSE.unpack_from):
            if status == NETIF_RSP_NULL:
                continue
            if ident not in outstanding:
                self.sent.errors += 1  # a response for nothing we sent: ignore it
                continue
            outstanding.discard(ident)
            free.append(ident)
            done += 1
            if status != NETIF_RSP_OKAY:
                self.sent.errors += 1
        return done

    # -- rx ---------------------------------------------------------------------------

    def post_rx(self) -> bool:
        """Offer every page not already offered to the backend; whether to notify it."""
        entries, ring, pack = self.rx.entries, self.rx, RX_REQUEST.pack_into
        posted, buffers, idle = self._rx_posted, self._rx_buffers, self._rx_idle
        while idle and not ring.full:
            ident = idle.pop()
            pack(entries, ring.claim_request(), ident, buffers[ident].gref)
            posted.add(ident)
        return ring.push_requests()

    def receive(self) -> list[bytes]:
        """The frames the backend delivered since the last call (whole ones: a frame
        whose last slot has not come yet waits); their pages are offered again by the
        next :meth:`post_rx`."""
        frames: list[bytes] = []
        posted, idle, buffers, partial = (self._rx_posted, self._rx_idle, self._rx_buffers,
                                          self._rx_partial)
        for ident, offset, flags, status in self.rx.take_responses(RX_RESPONSE.unpack_from):
            if ident not in posted:
                self.received.errors += 1  # an id we never offered: nothing to read
                continue
            posted.discard(ident)
            idle.append(ident)
            if status < 0 or offset + status > PAGE:
                self.received.errors += 1
                partial.clear()
                continue
            data = bytes(buffers[ident].page[offset:offset + status])
            if flags & NETRXF_more_data:
                partial.append(data)
                if len(partial) > MAX_SLOTS:
                    self.received.errors += 1
                    partial.clear()
                continue
            if partial:
                partial.append(data)
                data = b"".join(partial)
                partial.clear()
            frames.append(data)
        self.received.frames += len(frames)
        return frames


class NetbackEngine:
    """The backend's side of one frontend's rings."""

    def __init__(self, tx: BackRing, rx: BackRing) -> None:
        self.tx, self.rx = tx, rx
        self.pages: dict[tuple[int, bool], memoryview] = {}  # (gref, writable) -> page
        self.refused: set[tuple[int, bool]] = set()
        self._packet: list[TxRequest] = []  # a tx packet whose last slot has not come
        self._skip_extra = 0  # extra-info slots still to answer NULL
        self._extras = 0  # extra-info slots of the current packet beyond the first
        self._gso: tuple[int, int] | None = None  # the current packet's (size, type)
        self._scanned = [tx.req_cons, rx.req_cons]  # next request index wanted() looks at
        self._unknown: set[tuple[int, bool]] = set()
        self.from_guest, self.to_guest = Counters(), Counters()

    # -- grants -----------------------------------------------------------------------

    def wanted(self) -> set[tuple[int, bool]]:
        """``(gref, writable)`` of pages that waiting requests name and that are neither
        granted here nor refused: map them, then :meth:`grant` or :meth:`refuse` each.
        Each request is looked at once (a page named again later is known by then)."""
        for ring, writable, layout, at in ((self.tx, False, TX_REQUEST, 0),
                                           (self.rx, True, RX_REQUEST, 1)):
            waiting = ring.unconsumed_requests()
            start = self._scanned[at]
            if (start - ring.req_cons) & MASK32 > waiting:  # behind what was consumed
                start = ring.req_cons
            end = (ring.req_cons + waiting) & MASK32
            entries, offset, pages, refused = ring.entries, ring.offset, self.pages, self.refused
            index = start
            while index != end:
                gref = layout.unpack_from(entries, offset(index))[at and 1]
                key = (gref, writable)
                if key not in pages and key not in refused:
                    self._unknown.add(key)
                index = (index + 1) & MASK32
            self._scanned[at] = end
        return set(self._unknown)

    def grant(self, gref: int, writable: bool, page: memoryview) -> None:
        if len(page) != PAGE:
            raise ValueError(f"a granted page is {PAGE} bytes, not {len(page)}")
        self.pages[(gref, writable)] = page
        self._unknown.discard((gref, writable))

    def refuse(self, gref: int, writable: bool) -> None:
        self.refused.add((gref, writable))
        self._unknown.discard((gref, writable))

    # -- from the guest (its tx ring) -----------------------------------------------------

    def transmit(self) -> tuple[list[bytes | Offloaded], bool]:
        """The frames the guest sent (an :class:`Offloaded` where it left work to the
        device), and whether to notify it of the responses."""
        frames: list[bytes | Offloaded] = []
        ring = self.tx
        entries, pack, pages = ring.entries, TX_RESPONSE.pack_into, self.pages
        for req in ring.take_requests(TX_REQUEST.unpack_from):
            gref, offset, flags, ident, size = req
            if self._skip_extra:
                self._extra(req)
                pack(entries, ring.claim_response(), ident, NETIF_RSP_NULL)
                if self._packet and not self._skip_extra and \
                        not self._packet[-1].flags & NETTXF_more_data:
                    self._emit(frames)
                continue
            if not self._packet and not flags & (NETTXF_more_data | NETTXF_extra_info):
                page = pages.get((gref, False))  # one slot, the common case
                if page is None or offset + size > PAGE:
                    pack(entries, ring.claim_response(), ident, NETIF_RSP_ERROR)
                    self.from_guest.errors += 1
                    continue
                data = bytes(page[offset:offset + size])
                frames.append(Offloaded(data, 0, 0) if flags & NETTXF_csum_blank else data)
                pack(entries, ring.claim_response(), ident, NETIF_RSP_OKAY)
                continue
            self._packet.append(TxRequest(*req))
            if flags & NETTXF_extra_info:
                self._skip_extra = 1
            if (flags & NETTXF_more_data or self._skip_extra) and \
                    len(self._packet) <= MAX_SLOTS:
                continue
            self._emit(frames)
        self.from_guest.frames += len(frames)
        return frames, ring.push_responses()

    def _extra(self, req: tuple[int, int, int, int, int]) -> None:
        """An extra-info slot: the GSO one says how to cut the packet; another may follow."""
        self._skip_extra -= 1
        kind, flags, size, gso_type, _features = EXTRA_GSO.unpack(TX_REQUEST.pack(*req)[:8])
        if kind == XEN_NETIF_EXTRA_TYPE_GSO:
            self._gso = (size, gso_type)
        if flags & XEN_NETIF_EXTRA_FLAG_MORE and self._extras < MAX_SLOTS:
            self._extras += 1
            self._skip_extra += 1

    def _emit(self, frames: list[bytes | Offloaded]) -> None:
        """Answer the packet's slots and hand its frame on (or count it bad)."""
        packet, gso = self._packet, self._gso
        self._packet, self._gso, self._extras = [], None, 0
        frame = self._assemble(packet)
        if frame is not None and gso is not None and not 0 < gso[0] < len(frame):
            frame = None  # a segment size the frame cannot be cut by
        status = NETIF_RSP_OKAY if frame is not None else NETIF_RSP_ERROR
        entries, pack, claim = self.tx.entries, TX_RESPONSE.pack_into, self.tx.claim_response
        for part in packet:
            pack(entries, claim(), part.id, status)
        if frame is None:
            self.from_guest.errors += 1
        elif gso is not None or packet[0].flags & NETTXF_csum_blank:
            frames.append(Offloaded(frame, *(gso or (0, 0))))
        else:
            frames.append(frame)

    def _assemble(self, packet: list[TxRequest]) -> bytes | None:
        """The frame a packet's slots carry, or None if any slot is not to be believed."""
        if len(packet) > MAX_SLOTS or packet[-1].flags & NETTXF_more_data:
            return None
        total = packet[0].size
        rest = sum(req.size for req in packet[1:])
        sizes = [total - rest, *(req.size for req in packet[1:])]
        pieces = []
        for req, size in zip(packet, sizes, strict=True):
            page = self.pages.get((req.gref, False))
            if page is None or size < 0 or req.offset + size > PAGE:
                return None
            pieces.append(page[req.offset:req.offset + size])
        return b"".join(pieces) if len(pieces) > 1 else bytes(pieces[0])

    # -- to the guest (its rx ring) ------------------------------------------------------

    def deliver(self, frames: Iterable[bytes | memoryview]) -> bool:
        """Copy frames into pages the guest offered (a frame with too few offered is
        dropped and counted); whether to notify it."""
        ring = self.rx
        entries, pages, pack = ring.entries, self.pages, RX_RESPONSE.pack_into
        available = ring.unconsumed_requests()
        delivered = errors = drops = 0
        for frame in frames:
            size = len(frame)
            if size <= PAGE:  # one slot: the common case
                if not available:
                    drops += 1
                    continue
                available -= 1
                [(ident, gref)] = ring.take_requests(RX_REQUEST.unpack_from, limit=1)
                page = pages.get((gref, True))
                if page is None:
                    errors += 1
                    pack(entries, ring.claim_response(), ident, 0, 0, NETIF_RSP_ERROR)
                    continue
                page[:size] = frame
                pack(entries, ring.claim_response(), ident, 0, 0, size)
                delivered += 1
                continue
            slots = -(-size // PAGE)
            if slots > MAX_SLOTS or slots > available:
                drops += 1
                continue
            available -= slots
            view = memoryview(frame)
            ok = True
            for n, (ident, gref) in enumerate(ring.take_requests(RX_REQUEST.unpack_from,
                                                                 limit=slots)):
                chunk = view[n * PAGE:(n + 1) * PAGE]
                page = pages.get((gref, True))
                if page is None:
                    ok = False
                    pack(entries, ring.claim_response(), ident, 0, 0, NETIF_RSP_ERROR)
                    continue
                page[:len(chunk)] = chunk
                pack(entries, ring.claim_response(), ident, 0,
                     NETRXF_more_data if n < slots - 1 else 0, len(chunk))
            if ok:
                delivered += 1
            else:
                errors += 1
        self.to_guest.frames += delivered
        self.to_guest.errors += errors
        self.to_guest.drops += drops
        return ring.push_responses()
