"""netfront and netback engines against each other over the real ring layout in shared
buffers (one process: the same bytes the two processes would share), and against hostile
peers: a frontend naming pages it never granted, fragments past their page, sizes that do
not add up, chains too long; a backend answering ids never offered."""

from __future__ import annotations

import random

import pytest
from fata.platform.xen_netback import offload_offsets
from fata.xen.netchannel import MAX_SLOTS, Buffer, NetbackEngine, NetfrontEngine, Offloaded
from fata.xen.netif import (
    NETIF_RSP_ERROR,
    RX_ENTRY_SIZE,
    TX_ENTRY_SIZE,
    XEN_NETIF_GSO_TYPE_TCPV4,
    NETTXF_more_data,
    RxResponse,
    TxRequest,
    pack_rx_response,
    pack_tx_request,
    unpack_tx_response,
)
from fata.xen.ring import PAGE, BackRing, FrontRing
from hypothesis import given, settings
from hypothesis import strategies as st


class Link:
    """A frontend and a backend on two ring pages and 2 x 256 granted buffer pages; the
    backend learns each page through wanted()/grant() as its adapter would."""

    def __init__(self, slots: int = 256, refuse: set[int] = frozenset()) -> None:
        self.tx_page, self.rx_page = bytearray(PAGE), bytearray(PAGE)
        tx_front = FrontRing(self.tx_page, TX_ENTRY_SIZE)
        rx_front = FrontRing(self.rx_page, RX_ENTRY_SIZE)
        self.pages = {}
        tx_buffers = [self._buffer(1000 + i) for i in range(slots)]
        rx_buffers = [self._buffer(2000 + i) for i in range(slots)]
        self.front = NetfrontEngine(tx_front, rx_front, tx_buffers, rx_buffers)
        self.back = NetbackEngine(BackRing(self.tx_page, TX_ENTRY_SIZE),
                                  BackRing(self.rx_page, RX_ENTRY_SIZE))
        self.refuse = refuse
        self.front.post_rx()

    def _buffer(self, gref: int) -> Buffer:
        page = memoryview(bytearray(PAGE))
        self.pages[gref] = page
        return Buffer(gref, page)

    def resolve(self) -> None:
        for gref, writable in self.back.wanted():
            if gref in self.pages and gref not in self.refuse:
                self.back.grant(gref, writable, self.pages[gref])
            else:
                self.back.refuse(gref, writable)

    def guest_sends(self, frames: list[bytes]) -> list[bytes]:
        sent = [f for f in frames if self.front.send(f)]
        self.front.push()
        self.resolve()
        got, _ = self.back.transmit()
        assert self.front.tx_completed() == sum(max(1, -(-len(f) // PAGE)) for f in sent)
        return got

    def guest_receives(self, frames: list[bytes]) -> list[bytes]:
        self.resolve()
        self.back.deliver(frames)
        got = self.front.receive()
        self.front.post_rx()
        return got


frames = st.lists(st.binary(min_size=1, max_size=9000), min_size=1, max_size=12)


@settings(max_examples=60, deadline=None)
@given(st.lists(frames, min_size=1, max_size=8))
def test_frames_cross_both_ways_whole_and_in_order(batches: list[list[bytes]]) -> None:
    link = Link()
    for batch in batches:
        assert link.guest_sends(batch) == batch
        assert link.guest_receives(batch) == batch
    assert link.front.sent.errors == link.back.from_guest.errors == 0


def test_many_rounds_wrap_the_rings_and_reuse_every_page() -> None:
    link = Link(slots=256)
    rng = random.Random(7)
    for round_ in range(300):
        batch = [rng.randbytes(rng.choice([60, 1514, 4096, 4097, 8800])) for _ in range(5)]
        assert link.guest_sends(batch) == batch, round_
        assert link.guest_receives(batch) == batch, round_
    assert link.front.sent.frames == link.back.to_guest.frames == 1500
    assert link.back.tx.req_cons > 256 * 4  # wrapped the 256-slot ring several times


def test_a_full_ring_drops_and_counts_then_recovers() -> None:
    link = Link(slots=256)
    accepted = sum(link.front.send(b"x" * 100) for _ in range(300))
    assert accepted == 256 and link.front.sent.drops == 44
    link.front.push()
    link.resolve()
    got, notify = link.back.transmit()
    assert len(got) == 256 and notify  # the front asked to hear of responses at once
    assert link.front.tx_completed() == 256  # one slot each
    assert link.front.send(b"again")


def test_the_backend_drops_frames_it_has_no_offered_pages_for() -> None:
    link = Link(slots=4)
    link.resolve()
    link.back.deliver([b"a" * 5000, b"b" * 5000, b"c" * 5000])  # two pages each
    assert link.front.receive() == [b"a" * 5000, b"b" * 5000]
    assert link.back.to_guest.drops == 1


def test_a_frame_over_the_limits_is_refused_by_the_frontend() -> None:
    link = Link()
    assert not link.front.send(b"x" * (PAGE * MAX_SLOTS + 1))
    assert link.front.sent.errors == 1


# --- hostile frontends ------------------------------------------------------------------

def hostile(link: Link, requests: list[TxRequest]) -> list[tuple[int, int]]:
    """Put raw requests on the tx ring, run the backend, return (id, status) answered."""
    ring = link.front.tx
    for req in requests:
        pack_tx_request(ring.entries, ring.claim_request(), req)
    ring.push_requests()
    link.resolve()
    frames, _ = link.back.transmit()
    assert frames == []
    return [(r.id, r.status) for r in ring.take_responses(unpack_tx_response)]


@pytest.mark.parametrize("requests", [
    [TxRequest(77, 0, 0, 0, 100)],  # a page never granted
    [TxRequest(1000, 4000, 0, 0, 200)],  # past the end of its page
    [TxRequest(1000, 0, NETTXF_more_data, 0, 100), TxRequest(1001, 0, 0, 1, 300)],  # sizes
    [TxRequest(1000 + i, 0, NETTXF_more_data, i, 10) for i in range(MAX_SLOTS + 1)]
    + [TxRequest(77, 0, 0, 99, 10)],  # a chain longer than any backend must take
], ids=["ungranted", "past-page", "sizes", "too-long"])
def test_a_hostile_frontend_gets_errors_and_the_backend_goes_on(
        requests: list[TxRequest]) -> None:
    link = Link(refuse={77})
    answered = hostile(link, requests)
    assert len(answered) == len(requests)
    assert {status for _, status in answered} == {NETIF_RSP_ERROR}
    assert [ident for ident, _ in answered] == [req.id for req in requests]
    assert link.back.from_guest.errors >= 1
    link.front._tx_free = list(range(255, -1, -1))  # the raw requests used its ids
    assert link.guest_sends([b"fine" * 10]) == [b"fine" * 10]  # and it keeps serving


def test_a_frontend_asking_to_write_a_read_only_page_gets_nothing() -> None:
    link = Link()
    link.resolve()
    assert all(not writable for _, writable in link.back.pages if _ < 2000)
    assert all(writable for gref, writable in link.back.pages if gref >= 2000)


# --- a hostile backend ------------------------------------------------------------------

def test_rx_responses_for_ids_never_offered_are_ignored() -> None:
    link = Link(slots=4)
    ring = link.back.rx
    ring.take_requests(limit=1)
    pack_rx_response(ring.entries, ring.claim_response(), RxResponse(200, 0, 0, 10))
    ring.push_responses()
    assert link.front.receive() == []
    assert link.front.received.errors == 1
    link.resolve()
    assert link.guest_receives([b"ok"]) == [b"ok"]


def test_rx_response_past_its_page_is_an_error() -> None:
    link = Link(slots=4)
    ring = link.back.rx
    [req] = ring.take_requests(limit=1)
    rid = int.from_bytes(req[:2], "little")
    pack_rx_response(ring.entries, ring.claim_response(), RxResponse(rid, 4000, 0, 200))
    ring.push_responses()
    assert link.front.receive() == [] and link.front.received.errors == 1


# --- offloads ---------------------------------------------------------------------------

def offloaded_round(link: Link, frame: bytes, **offload: int) -> list[object]:
    assert link.front.send(frame, **offload)
    link.front.push()
    link.resolve()
    got, _ = link.back.transmit()
    assert link.front.tx_completed() == max(1, -(-len(frame) // PAGE))
    return got


@pytest.mark.parametrize("size", [3000, 20000, 65000])
def test_a_tso_segment_crosses_with_its_gso_size(size: int) -> None:
    link = Link()
    frame = random.Random(size).randbytes(size)
    [got] = offloaded_round(link, frame, csum_blank=True, gso_size=1448)
    assert got == Offloaded(frame, 1448, XEN_NETIF_GSO_TYPE_TCPV4)
    assert link.back.from_guest.errors == 0
    assert link.guest_sends([b"plain"]) == [b"plain"]  # and plain frames after it


def test_a_partial_checksum_alone_is_marked_for_the_device() -> None:
    link = Link()
    assert offloaded_round(link, b"x" * 100, csum_blank=True) == [Offloaded(b"x" * 100, 0, 0)]


def test_a_gso_size_the_frame_cannot_be_cut_by_is_an_error() -> None:
    link = Link()
    assert offloaded_round(link, b"y" * 5000, csum_blank=True, gso_size=6000) == []
    assert link.back.from_guest.errors == 1


@pytest.mark.parametrize(("frame", "expected"), [
    (bytes(12) + b"\x08\x00" + b"\x45" + bytes(8) + b"\x06" + bytes(10)
     + bytes(12) + b"\x50" + bytes(7) + b"data", (34, 16, 54)),  # IPv4 TCP
    (bytes(12) + b"\x08\x00" + b"\x46" + bytes(8) + b"\x11" + bytes(14) + bytes(8),
     (38, 6, 46)),  # IPv4 with options, UDP
    (bytes(12) + b"\x86\xdd" + bytes(6) + b"\x06" + bytes(33) + bytes(12) + b"\x80"
     + bytes(19), (54, 16, 86)),  # IPv6 TCP with options
    (bytes(12) + b"\x81\x00" + bytes(2) + b"\x08\x00" + b"\x45" + bytes(8) + b"\x11"
     + bytes(10) + bytes(8), (38, 6, 46)),  # one VLAN tag
    (bytes(12) + b"\x08\x06" + bytes(28), None),  # ARP
    (bytes(12) + b"\x08\x00" + b"\x45" + bytes(8) + b"\x06" + bytes(10) + bytes(5), None),
    (bytes(12) + b"\x08\x00" + b"\x45" + bytes(8) + b"\x06" + bytes(10) + bytes(12)
     + b"\xf0" + bytes(7), None),  # a TCP header longer than the frame
])
def test_netback_finds_the_checksum_from_the_frames_own_headers(
        frame: bytes, expected: tuple[int, int, int] | None) -> None:
    assert offload_offsets(frame) == expected
