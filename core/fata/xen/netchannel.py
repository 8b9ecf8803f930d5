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
    NETIF_RSP_ERROR,
    NETIF_RSP_NULL,
    NETIF_RSP_OKAY,
    XEN_NETIF_MAX_TX_SIZE,
    XEN_NETIF_NR_SLOTS_MIN,
    NETRXF_more_data,
    NETTXF_extra_info,
    NETTXF_more_data,
    RxRequest,
    RxResponse,
    TxRequest,
    TxResponse,
    pack_rx_request,
    pack_rx_response,
    pack_tx_request,
    pack_tx_response,
    unpack_rx_request,
    unpack_rx_response,
    unpack_tx_request,
    unpack_tx_response,
)
from fata.xen.ring import PAGE, BackRing, FrontRing

MAX_SLOTS = XEN_NETIF_NR_SLOTS_MIN  # slots of one packet we accept (every backend must)


@dataclass(frozen=True, slots=True)
class Buffer:
    """One granted page of the frontend: its grant reference and the page itself."""

    gref: int
    page: memoryview


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
        self._rx_posted: set[int] = set()
        self._rx_partial: list[bytes] = []
        self.sent, self.received = Counters(), Counters()

    # -- tx ---------------------------------------------------------------------------

    def send(self, frame: bytes | bytearray | memoryview) -> bool:
        """Queue one frame on the tx ring (copied into its pages); False when there is no
        room (the frame is dropped and counted), as a full NIC queue drops."""
        size = len(frame)
        slots = max(1, -(-size // PAGE))
        if size > XEN_NETIF_MAX_TX_SIZE or slots > MAX_SLOTS:
            self.sent.errors += 1
            return False
        if slots > len(self._tx_free) or slots > self.tx.free_requests:
            self.sent.drops += 1
            return False
        view = memoryview(frame)
        entries = self.tx.entries
        for n in range(slots):
            ident = self._tx_free.pop()
            buffer = self._tx_buffers[ident]
            chunk = view[n * PAGE:(n + 1) * PAGE]
            buffer.page[:len(chunk)] = chunk
            last = n == slots - 1
            pack_tx_request(entries, self.tx.claim_request(), TxRequest(
                buffer.gref, 0, 0 if last else NETTXF_more_data, ident,
                size if n == 0 else len(chunk)))
        self.sent.frames += 1
        return True

    def push(self) -> bool:
        """Publish the frames queued; whether to notify the backend."""
        return self.tx.push_requests()

    def tx_completed(self) -> int:
        """Take the backend's tx responses, freeing their pages; how many slots."""
        done = 0
        for rsp in self.tx.take_responses(unpack_tx_response):
            done += self._tx_done(rsp)
        return done

    def _tx_done(self, rsp: TxResponse) -> int:
        if rsp.status == NETIF_RSP_NULL:
            return 0
        if not 0 <= rsp.id < len(self._tx_buffers) or rsp.id in self._tx_free:
            self.sent.errors += 1  # a response for nothing we sent: ignore it
            return 0
        self._tx_free.append(rsp.id)
        if rsp.status != NETIF_RSP_OKAY:
            self.sent.errors += 1
        return 1

    # -- rx ---------------------------------------------------------------------------

    def post_rx(self) -> bool:
        """Offer every page not already offered to the backend; whether to notify it."""
        entries = self.rx.entries
        for ident, buffer in enumerate(self._rx_buffers):
            if ident in self._rx_posted or self.rx.full:
                continue
            pack_rx_request(entries, self.rx.claim_request(), RxRequest(ident, buffer.gref))
            self._rx_posted.add(ident)
        return self.rx.push_requests()

    def receive(self) -> list[bytes]:
        """The frames the backend delivered since the last call (whole ones: a frame
        whose last slot has not come yet waits); their pages are offered again by the
        next :meth:`post_rx`."""
        frames: list[bytes] = []
        for rsp in self.rx.take_responses(unpack_rx_response):
            self._rx_one(rsp, frames)
        return frames

    def _rx_one(self, rsp: RxResponse, frames: list[bytes]) -> None:
        if rsp.id not in self._rx_posted:
            self.received.errors += 1  # an id we never offered: nothing to read
            return
        self._rx_posted.discard(rsp.id)
        if rsp.status < 0 or rsp.offset + rsp.status > PAGE:
            self.received.errors += 1
            self._rx_partial.clear()
            return
        page = self._rx_buffers[rsp.id].page
        self._rx_partial.append(bytes(page[rsp.offset:rsp.offset + rsp.status]))
        if rsp.flags & NETRXF_more_data:
            if len(self._rx_partial) > MAX_SLOTS:
                self.received.errors += 1
                self._rx_partial.clear()
            return
        frames.append(b"".join(self._rx_partial))
        self._rx_partial.clear()
        self.received.frames += 1


class NetbackEngine:
    """The backend's side of one frontend's rings."""

    def __init__(self, tx: BackRing, rx: BackRing) -> None:
        self.tx, self.rx = tx, rx
        self.pages: dict[tuple[int, bool], memoryview] = {}  # (gref, writable) -> page
        self.refused: set[tuple[int, bool]] = set()
        self._packet: list[TxRequest] = []  # a tx packet whose last slot has not come
        self._skip_extra = 0  # extra-info slots still to answer NULL
        self.from_guest, self.to_guest = Counters(), Counters()

    # -- grants -----------------------------------------------------------------------

    def wanted(self) -> set[tuple[int, bool]]:
        """``(gref, writable)`` of pages that waiting requests name and that are neither
        granted here nor refused: map them, then :meth:`grant` or :meth:`refuse` each."""
        out: set[tuple[int, bool]] = set()
        for ring, writable, unpack in ((self.tx, False, unpack_tx_request),
                                       (self.rx, True, unpack_rx_request)):
            waiting = ring.unconsumed_requests()
            for n in range(waiting):
                req = unpack(ring.entries, ring.offset(ring.req_cons + n))
                key = (req.gref, writable)
                if key not in self.pages and key not in self.refused:
                    out.add(key)
        return out

    def grant(self, gref: int, writable: bool, page: memoryview) -> None:
        if len(page) != PAGE:
            raise ValueError(f"a granted page is {PAGE} bytes, not {len(page)}")
        self.pages[(gref, writable)] = page

    def refuse(self, gref: int, writable: bool) -> None:
        self.refused.add((gref, writable))

    # -- from the guest (its tx ring) -----------------------------------------------------

    def transmit(self) -> tuple[list[bytes], bool]:
        """The frames the guest sent, and whether to notify it of the responses."""
        frames: list[bytes] = []
        entries = self.tx.entries
        for req in self.tx.take_requests(unpack_tx_request):
            if self._skip_extra:
                self._skip_extra -= 1
                pack_tx_response(entries, self.tx.claim_response(),
                                 TxResponse(req.id, NETIF_RSP_NULL))
                continue
            self._packet.append(req)
            if req.flags & NETTXF_extra_info:
                self._skip_extra = 1
            if req.flags & NETTXF_more_data and len(self._packet) <= MAX_SLOTS:
                continue
            frame = self._assemble(self._packet)
            status = NETIF_RSP_OKAY if frame is not None else NETIF_RSP_ERROR
            for part in self._packet:
                pack_tx_response(entries, self.tx.claim_response(), TxResponse(part.id, status))
            if frame is None:
                self.from_guest.errors += 1
            else:
                frames.append(frame)
                self.from_guest.frames += 1
            self._packet = []
        return frames, self.tx.push_responses()

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
        entries = self.rx.entries
        for frame in frames:
            size = len(frame)
            slots = max(1, -(-size // PAGE))
            if slots > MAX_SLOTS or slots > self.rx.unconsumed_requests():
                self.to_guest.drops += 1
                continue
            view = memoryview(frame)
            ok = True
            for n, req in enumerate(self.rx.take_requests(unpack_rx_request, limit=slots)):
                chunk = view[n * PAGE:(n + 1) * PAGE]
                page = self.pages.get((req.gref, True))
                if page is None:
                    ok = False
                    rsp = RxResponse(req.id, 0, 0, NETIF_RSP_ERROR)
                else:
                    page[:len(chunk)] = chunk
                    rsp = RxResponse(req.id, 0, NETRXF_more_data if n < slots - 1 else 0,
                                     len(chunk))
                pack_rx_response(entries, self.rx.claim_response(), rsp)
            if ok:
                self.to_guest.frames += 1
            else:
                self.to_guest.errors += 1
        return self.rx.push_responses()
