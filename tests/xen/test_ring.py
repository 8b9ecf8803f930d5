"""The ``ring.h`` shared ring in Python, both ends in one buffer: the layout the front
initialises, free-running indexes across 2**32, back-pressure when full, the event-index
notification rule (compared with the C macro's arithmetic), random interleavings of both
ends against a model, and a peer's impossible indexes refused.  The netif and blkif codecs
round-trip here; their byte layout against gcc is ``test_ring_interop.py``'s."""

from __future__ import annotations

import ctypes
import struct

import pytest
from fata.xen import blkif, netif
from fata.xen.blkif import DiscardRequest, IndirectRequest, Request, Response, Segment
from fata.xen.netif import GsoInfo, RxRequest, TxRequest, TxResponse
from fata.xen.ring import BackRing, FrontRing, RingError, RingFull, notify_needed, ring_size
from hypothesis import given, settings
from hypothesis import strategies as st

M32 = 0xFFFFFFFF


def header(page: bytearray | memoryview) -> tuple[int, int, int, int]:
    """req_prod req_event rsp_prod rsp_event, as ``struct <name>_sring`` lays them out."""
    return struct.unpack_from("<4I", page, 0)


def pair(entry_size: int = netif.TX_ENTRY_SIZE, start: int = 0,
         ring_bytes: int = 4096) -> tuple[bytearray, FrontRing, BackRing]:
    page = bytearray(ring_bytes)
    front = FrontRing(page, entry_size, start=start)
    return page, front, BackRing(page, entry_size, start=start)


def c_notify(old: int, new: int, event: int) -> bool:
    """RING_PUSH_*_AND_CHECK_NOTIFY's ``(RING_IDX)(new - event) < (RING_IDX)(new - old)``,
    with C's unsigned int arithmetic."""
    return ctypes.c_uint32(new - event).value < ctypes.c_uint32(new - old).value


# -- geometry and initialisation -------------------------------------------------------------

def test_ring_size_is_the_largest_power_of_two_that_fits() -> None:
    assert ring_size(4096, 12) == 256 and ring_size(4096, 8) == 256
    assert ring_size(4096, 112) == 32 and ring_size(8192, 112) == 64
    assert ring_size(4096, 4032) == 1 and ring_size(4096, 2016) == 2
    assert ring_size(4096 * 16, 12) == 4096
    with pytest.raises(ValueError, match="hold no"):
        ring_size(4096, 4033)
    with pytest.raises(ValueError):
        ring_size(4096, 0)


def test_the_front_initialises_the_shared_ring_as_shared_ring_init() -> None:
    page = bytearray(b"\xee" * 4096)
    front = FrontRing(page, netif.TX_ENTRY_SIZE)
    assert header(page) == front.shared_indexes == (0, 1, 0, 1)
    assert page[16:64] == bytes(48)  # pvt and __pad zeroed
    assert page[64:] == b"\xee" * (4096 - 64)  # the entries are not the init's business
    assert (front.size, front.req_prod_pvt, front.rsp_cons, front.free_requests) == (256, 0, 0, 256)
    assert len(front.entries) == 256 * 12
    BackRing(page, netif.TX_ENTRY_SIZE)  # BACK_RING_INIT writes nothing shared
    FrontRing(page, netif.TX_ENTRY_SIZE, attach=True)  # neither does FRONT_RING_ATTACH
    assert header(page) == (0, 1, 0, 1)
    FrontRing(page, netif.TX_ENTRY_SIZE, start=0xFFFFFFFF)
    assert header(page) == (M32, 0, M32, 0)  # events at start + 1, wrapped


def test_buffers_that_cannot_hold_a_ring_are_refused() -> None:
    with pytest.raises(ValueError, match="writable"):
        FrontRing(bytes(4096), 12)
    with pytest.raises(ValueError, match="not 8192"):
        FrontRing(bytearray(4096), 12, ring_bytes=8192)
    with pytest.raises(ValueError, match="hold no"):
        BackRing(bytearray(64), 12)


def test_a_request_and_its_response_share_the_slot_at_index_and_mask() -> None:
    page, front, back = pair()
    netif.pack_tx_request(front.entries, front.claim_request(), TxRequest(7, 100, 0, 1, 60))
    assert front.push_requests() is True  # the back's req_event is 1
    assert header(page)[0] == 1
    assert page[64:76] == struct.pack("<IHHHH", 7, 100, 0, 1, 60)
    assert back.take_requests(netif.unpack_tx_request) == [TxRequest(7, 100, 0, 1, 60)]
    netif.pack_tx_response(back.entries, back.claim_response(), TxResponse(1, 0))
    assert back.push_responses() is True
    assert page[64:68] == struct.pack("<Hh", 1, 0) and header(page)[2] == 1
    assert front.take_responses(netif.unpack_tx_response) == [TxResponse(1, 0)]
    assert front.free_requests == 256


# -- free-running indexes ---------------------------------------------------------------------

def test_indexes_wrap_around_two_to_the_32() -> None:
    start = 2**32 - 100
    page, front, back = pair(start=start)
    sent = [bytes([i % 256]) * 12 for i in range(700)]
    got: list[bytes] = []
    answered = 0
    while answered < len(sent):
        front.put_requests(sent[(front.req_prod_pvt - start) & M32:])
        front.push_requests()
        for req in back.take_requests():
            got.append(req)
            back.put_response(req[:4])
        back.push_responses()
        answered += len(front.take_responses())
    assert got == sent
    assert header(page)[0] == header(page)[2] == (start + 700) & M32 == 600
    assert back.req_cons == back.rsp_prod_pvt == front.rsp_cons == 600
    # Index 600 is slot 600 & 255 = 88: the last request, 699, sits in the slot before it.
    assert page[64 + 87 * 12:64 + 88 * 12] == sent[699]


def test_take_copies_entries_across_the_end_of_the_ring() -> None:
    page, front, back = pair(start=250)
    front.put_requests([bytes([i]) * 12 for i in range(10)])
    front.push_requests()
    assert back.take_requests() == [bytes([i]) * 12 for i in range(10)]
    assert page[64 + 250 * 12] == 0 and page[64 + 255 * 12] == 5  # slots 250..255,
    assert page[64] == 6 and page[64 + 3 * 12] == 9 and page[64 + 4 * 12] == 0  # then 0..3


def test_a_multi_page_ring_holds_more_entries() -> None:
    _page, front, back = pair(netif.TX_ENTRY_SIZE, ring_bytes=4 * 4096)
    assert front.size == back.size == 1024
    assert front.put_requests([b"x" * 12] * 2000) == 1024 and front.full


# -- back-pressure ---------------------------------------------------------------------------

def test_a_full_ring_refuses_requests_until_responses_are_taken() -> None:
    _page, front, back = pair(blkif.ENTRY_SIZE)
    assert front.size == 32
    assert front.put_requests([bytes([i]) for i in range(40)]) == 32
    assert front.full and front.free_requests == 0
    with pytest.raises(RingFull):
        front.put_request(b"one more")
    with pytest.raises(RingFull):
        front.claim_request()
    assert front.put_requests([b"x"]) == 0 and front.req_prod_pvt == 32
    front.push_requests()
    assert len(back.take_requests()) == 32
    assert front.full  # taken is not answered: the slots are still the back's
    back.put_response(b"r0")
    back.push_responses()
    assert front.full  # answered is not taken either
    assert front.take_responses() == [b"r0" + bytes(110)]
    assert front.free_requests == 1 and not front.full
    front.put_request(b"again")
    assert front.full


def test_the_back_answers_only_requests_it_took() -> None:
    _page, front, back = pair()
    with pytest.raises(ValueError, match="no request taken"):
        back.claim_response()
    front.put_requests([b"a", b"b"])
    front.push_requests()
    assert back.take_requests(limit=1) == [b"a" + bytes(11)]
    assert back.responses_owed == 1 and back.unconsumed_requests() == 1
    back.put_response(b"A")
    with pytest.raises(ValueError):
        back.put_response(b"B")
    with pytest.raises(ValueError, match="do not fit"):
        front.put_request(bytes(13))


# -- notification hold-off --------------------------------------------------------------------

def test_a_consumer_that_final_checked_is_notified_exactly_once_per_sleep() -> None:
    page, front, back = pair()
    assert back.final_check_for_requests() is False  # nothing: sleep, req_event = 1
    front.put_request(b"1")
    assert front.push_requests() is True  # passes req_event: wake the back
    front.put_request(b"2")
    assert front.push_requests() is False  # the back is awake already
    assert front.push_requests() is False  # nothing new
    assert len(back.take_requests()) == 2
    front.put_request(b"3")
    assert front.push_requests() is False  # the back has not said it sleeps
    assert back.final_check_for_requests() is True  # and must not: "3" is there
    assert header(page)[1] == 1  # ... so it left req_event alone
    assert len(back.take_requests()) == 1
    assert back.final_check_for_requests() is False and header(page)[1] == 4
    front.put_requests([b"4", b"5", b"6"])
    assert front.push_requests() is True  # one notification for the batch
    # Responses: the same rule the other way.
    assert len(back.take_requests()) == 3 and back.responses_owed == 6
    back.put_response(b"r")
    assert back.push_responses() is True  # SHARED_RING_INIT's rsp_event 1: the first one
    back.put_response(b"r")
    assert back.push_responses() is False  # the front has not slept since
    assert front.final_check_for_responses() is True  # and must not: two are waiting
    assert header(page)[3] == 1 and len(front.take_responses()) == 2
    assert front.final_check_for_responses() is False and header(page)[3] == 3
    for _ in range(4):
        back.put_response(b"r")
    assert back.push_responses() is True


def test_an_event_index_set_ahead_batches_wake_ups() -> None:
    _page, front, back = pair()
    back.set_request_event(10)  # wake me at the tenth request
    for i in range(1, 12):
        front.put_request(bytes([i]))
        assert front.push_requests() is (i == 10)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, M32), st.integers(0, 256), st.integers(0, M32))
def test_the_notify_decision_is_the_c_macros(old: int, moved: int, event: int) -> None:
    page = bytearray(4096)
    struct.pack_into("<4I", page, 0, old, event, old, event)
    front = FrontRing(page, netif.TX_ENTRY_SIZE, start=old, attach=True)
    back = BackRing(page, netif.TX_ENTRY_SIZE, start=old)
    front.put_requests([b"q"] * moved)
    new = (old + moved) & M32
    assert front.push_requests() is c_notify(old, new, event)
    back.take_requests()
    for _ in range(moved):
        back.put_response(b"r")
    assert back.push_responses() is c_notify(old, new, event)
    assert notify_needed(old, new, event) is c_notify(old, new, event)


# -- random interleavings against a model -------------------------------------------------

OPS = st.lists(st.tuples(st.sampled_from(["put", "push", "take", "answer", "push_rsp",
                                          "take_rsp", "front_sleep", "back_sleep"]),
                         st.integers(1, 40)), max_size=120)


@settings(max_examples=150, deadline=None)
@given(st.integers(0, M32), st.sampled_from([netif.RX_ENTRY_SIZE, blkif.ENTRY_SIZE]), OPS)
def test_random_interleavings_deliver_every_request_once_in_order(
        start: int, entry_size: int, ops: list[tuple[str, int]]) -> None:
    page, front, back = pair(entry_size, start=start)
    size = front.size
    made = taken = answered = got = 0  # requests put, taken by the back, answered, collected
    back_asleep = front_asleep = False

    def body(n: int) -> bytes:
        return n.to_bytes(8, "little")

    def drain() -> None:
        for op in ("push", "take", "answer", "push_rsp", "take_rsp"):
            step(op, 1000)

    def step(op: str, n: int) -> None:
        nonlocal made, taken, answered, got, back_asleep, front_asleep
        if op == "put":
            k = front.put_requests(body(made + i) for i in range(n))
            assert k == min(n, size - (made - got))  # the room the model says there is
            made += k
        elif op == "push":
            pushed = (front.req_prod_pvt - header(page)[0]) & M32
            notify = front.push_requests()
            if back_asleep and pushed:
                assert notify, "a sleeping back was not woken"
                back_asleep = False
        elif op == "take":
            for req in back.take_requests(limit=n):
                assert req[:8] == body(taken)
                taken += 1
        elif op == "answer":
            for _ in range(min(n, taken - answered)):
                back.put_response(body(answered))
                answered += 1
            assert back.responses_owed == taken - answered
        elif op == "push_rsp":
            pushed = (back.rsp_prod_pvt - header(page)[2]) & M32
            notify = back.push_responses()
            if front_asleep and pushed:
                assert notify, "a sleeping front was not woken"
                front_asleep = False
        elif op == "take_rsp":
            for rsp in front.take_responses(limit=n):
                assert rsp[:8] == body(got)
                got += 1
        elif op == "front_sleep" and not front_asleep:
            front_asleep = not front.final_check_for_responses()
            assert front_asleep is (header(page)[2] == front.rsp_cons)
        elif op == "back_sleep" and not back_asleep:
            back_asleep = not back.final_check_for_requests()
            assert back_asleep is (header(page)[0] == back.req_cons)

    for op, n in ops:
        step(op, n)
        assert front.free_requests == size - (made - got)
    drain()
    assert made == taken == answered == got
    assert (front.req_prod_pvt - start) & M32 == made


# -- a peer's impossible indexes ------------------------------------------------------------

def test_a_front_claiming_more_requests_than_the_ring_holds_is_refused() -> None:
    page, _front, back = pair(start=1000)
    struct.pack_into("<I", page, 0, 1000 + 257)
    with pytest.raises(RingError, match="req_prod 1257 is impossible"):
        back.take_requests()
    with pytest.raises(RingError):
        back.final_check_for_requests()
    assert back.req_cons == 1000  # nothing was consumed on the bad index
    struct.pack_into("<I", page, 0, 1000 + 256)
    assert len(back.take_requests()) == 256  # a full ring is legal


def test_a_front_whose_producer_went_backwards_is_refused() -> None:
    page, front, back = pair(start=5)
    front.put_requests([b"x"] * 10)
    front.push_requests()
    assert len(back.take_requests()) == 10
    struct.pack_into("<I", page, 0, 10)  # behind req_cons 15
    with pytest.raises(RingError, match="impossible"):
        back.unconsumed_requests()
    struct.pack_into("<I", page, 0, (5 - 1) & M32)  # behind even our responses
    with pytest.raises(RingError):
        back.take_requests()


def test_a_back_answering_requests_never_made_is_refused() -> None:
    page, front, _back = pair(start=M32 - 2)
    front.put_requests([b"x"] * 3)
    front.push_requests()
    struct.pack_into("<I", page, 8, (M32 - 2 + 4) & M32)  # four responses to three requests
    with pytest.raises(RingError, match="only 3 requests are outstanding"):
        front.take_responses()
    with pytest.raises(RingError):
        front.final_check_for_responses()
    struct.pack_into("<I", page, 8, M32 - 3)  # rsp_prod went backwards
    with pytest.raises(RingError):
        front.unconsumed_responses()
    assert front.rsp_cons == M32 - 2


# -- codecs -------------------------------------------------------------------------------

def test_netif_codecs_round_trip_at_an_offset() -> None:
    buf = memoryview(bytearray(40))
    netif.pack_tx_request(buf, 12, TxRequest(1, 2, netif.NETTXF_more_data, 4, 5))
    assert netif.unpack_tx_request(buf, 12) == TxRequest(1, 2, 4, 4, 5)
    netif.pack_rx_request(buf, 4, RxRequest(9, 0xFFFFFFFF))
    assert netif.unpack_rx_request(buf, 4) == RxRequest(9, 0xFFFFFFFF)
    netif.pack_rx_response(buf, 0, netif.RxResponse(3, 0, netif.NETRXF_csum_blank, 1514))
    assert netif.unpack_rx_response(buf, 0).status == 1514
    netif.pack_gso(buf, 24, GsoInfo(1448, netif.XEN_NETIF_GSO_TYPE_TCPV4))
    assert netif.unpack_extra_info(buf, 24).type == netif.XEN_NETIF_EXTRA_TYPE_GSO
    assert netif.unpack_gso(buf, 24) == GsoInfo(1448, 1, 0, 0)
    with pytest.raises(ValueError, match="not a hash"):
        netif.unpack_hash(buf, 24)
    with pytest.raises(ValueError, match="6 bytes"):
        netif.pack_extra_info(buf, 0, netif.ExtraInfo(1, 0, b"short"))


def test_blkif_codecs_round_trip_and_refuse_impossible_requests() -> None:
    buf = memoryview(bytearray(2 * blkif.ENTRY_SIZE))
    req = Request(blkif.BLKIF_OP_READ, 0x51, 2**64 - 1, 2**63,
                  tuple(Segment(j, 0, 7) for j in range(11)))
    blkif.pack_request(buf, blkif.ENTRY_SIZE, req)
    assert blkif.unpack_request(buf, blkif.ENTRY_SIZE) == req
    assert blkif.operation_of(buf, blkif.ENTRY_SIZE) == blkif.BLKIF_OP_READ
    with pytest.raises(ValueError, match="12 segments"):
        blkif.pack_request(buf, 0, req._replace(segments=(*req.segments, Segment(1, 0, 0))))
    buf[1] = 12  # a front claiming twelve segments
    with pytest.raises(ValueError, match="12 segments"):
        blkif.unpack_request(buf, 0)
    blkif.pack_discard(buf, 0, DiscardRequest(1, 2, 3, 4))
    assert blkif.unpack_discard(buf, 0) == DiscardRequest(1, 2, 3, 4, 0)
    with pytest.raises(ValueError, match="not a discard"):
        blkif.unpack_discard(buf, blkif.ENTRY_SIZE)
    ind = IndirectRequest(blkif.BLKIF_OP_WRITE, 1024, 1, 2, 3, (10, 11))
    blkif.pack_indirect(buf, 0, ind)
    assert blkif.unpack_indirect(buf, 0) == ind  # 1024 segments: two pages of grefs
    blkif.pack_indirect(buf, 0, ind._replace(nr_segments=4097))
    with pytest.raises(ValueError, match="9 pages"):
        blkif.unpack_indirect(buf, 0)
    blkif.pack_response(buf, 0, Response(5, blkif.BLKIF_OP_FLUSH_DISKCACHE,
                                         blkif.BLKIF_RSP_EOPNOTSUPP))
    assert blkif.unpack_response(buf, 0) == Response(5, 3, -2)


def test_a_blkif_ring_carries_requests_decoded_in_place() -> None:
    _page, front, back = pair(blkif.ENTRY_SIZE, start=M32 - 20)
    for i in range(32):
        blkif.pack_request(front.entries, front.claim_request(),
                           Request(i & 1, 0x51, i, i * 8, (Segment(i, 0, 7),)))
    front.push_requests()
    reqs = back.take_requests(blkif.unpack_request)
    assert [(r.id, r.sector_number, r.segments) for r in reqs] == [
        (i, i * 8, (Segment(i, 0, 7),)) for i in range(32)]
    for r in reqs:
        blkif.pack_response(back.entries, back.claim_response(),
                            Response(r.id, r.operation, blkif.BLKIF_RSP_OKAY))
    back.push_responses()
    assert [r.id for r in front.take_responses(blkif.unpack_response)] == list(range(32))
