"""blkfront and blkback engines against each other over the real ring layout in one shared
buffer (the bytes the two processes would share), with a bytearray for the disk, checked
against a model of it by hypothesis; then against hostile peers: a frontend naming pages
it never granted, impossible segments, too many or no segments, sectors past the disk,
writes to a read-only disk, operations nobody offered; a backend answering ids never sent
or with the wrong operation."""

from __future__ import annotations

import random

import pytest
from fata.xen.blkchannel import (
    FRONT_MAX_SEGMENTS,
    MAX_INDIRECT_SEGMENTS,
    BlkbackEngine,
    BlkfrontEngine,
    Io,
    Operation,
)
from fata.xen.blkif import (
    BLKIF_DISCARD_SECURE,
    BLKIF_MAX_SEGMENTS_PER_REQUEST,
    BLKIF_OP_DISCARD,
    BLKIF_OP_FLUSH_DISKCACHE,
    BLKIF_OP_INDIRECT,
    BLKIF_OP_READ,
    BLKIF_OP_RESERVED_1,
    BLKIF_OP_WRITE,
    BLKIF_OP_WRITE_BARRIER,
    BLKIF_RSP_EOPNOTSUPP,
    BLKIF_RSP_ERROR,
    BLKIF_RSP_OKAY,
    ENTRY_SIZE,
    REQUEST_HEADER,
    SEGMENT,
    DiscardRequest,
    IndirectRequest,
    Request,
    Response,
    Segment,
    pack_discard,
    pack_indirect,
    pack_request,
    pack_response,
    unpack_response,
)
from fata.xen.netchannel import Buffer
from fata.xen.ring import PAGE, BackRing, FrontRing, RingError
from hypothesis import given, settings
from hypothesis import strategies as st

SECTORS = 4096  # a 2 MiB disk
BLKIF_MAX_SEGMENTS = BLKIF_MAX_SEGMENTS_PER_REQUEST
POOL_GREF, INDIRECT_GREF, STRAY_GREF = 100, 5000, 9000


class Link:
    """A frontend and a backend on one ring page, the frontend's pool of granted pages,
    and the backend's disk as a bytearray; the backend learns pages through
    wanted()/grant() and does its I/O as its adapter would."""

    def __init__(self, *, pool: int = 64, max_segments: int = BLKIF_MAX_SEGMENTS,
                 sectors: int = SECTORS, read_only: bool = False, flush: bool = True,
                 discard: bool = True, indirect: int = MAX_INDIRECT_SEGMENTS,
                 readonly_grefs: frozenset[int] = frozenset(),
                 rng: random.Random | None = None) -> None:
        self.ring_page = bytearray(PAGE)
        self.pages: dict[int, memoryview] = {}
        buffers = [self._buffer(POOL_GREF + i) for i in range(pool)]
        indirects = ([self._buffer(INDIRECT_GREF + i) for i in range(32)]
                     if max_segments > BLKIF_MAX_SEGMENTS else [])
        for i in range(4):  # granted to the backend, never used by this frontend
            self._buffer(STRAY_GREF + i)
        self.front = BlkfrontEngine(FrontRing(self.ring_page, ENTRY_SIZE), buffers,
                                    indirect=indirects, max_segments=max_segments, handle=3)
        self.back = BlkbackEngine(BackRing(self.ring_page, ENTRY_SIZE), sectors,
                                  read_only=read_only, flush=flush, discard=discard,
                                  max_indirect_segments=indirect)
        self.readonly_grefs = readonly_grefs
        self.disk = bytearray(random.Random(sectors).randbytes(sectors * 512))
        self.flushes = 0
        self.rng = rng

    def _buffer(self, gref: int) -> Buffer:
        page = memoryview(bytearray(PAGE))
        self.pages[gref] = page
        return Buffer(gref, page)

    def resolve(self, wanted: set[int]) -> None:
        for gref in wanted:
            if gref not in self.pages:
                self.back.refuse(gref)
            elif gref in self.readonly_grefs:
                self.back.grant(gref, self.pages[gref].toreadonly(), False)
            else:
                self.back.grant(gref, self.pages[gref], True)

    def take(self, passes: int = 3) -> list[Io]:
        """What the adapter does: take, map what stalled requests name (indirect pages
        first, then the pages they name), take again; the last pass is final."""
        ios: list[Io] = []
        for attempt in range(passes + 1):
            ios += self.back.take(final=attempt == passes)
            wanted = self.back.wanted()
            if not wanted:
                break
            self.resolve(wanted)
        return ios

    def do(self, io: Io) -> int:
        """The adapter's I/O on the bytearray disk."""
        at = io.sector * 512
        if io.kind == BLKIF_OP_READ:
            for buf in io.buffers:
                buf[:] = self.disk[at:at + len(buf)]
                at += len(buf)
            assert at == (io.sector + io.count) * 512
        elif io.kind == BLKIF_OP_WRITE:
            for buf in io.buffers:
                self.disk[at:at + len(buf)] = buf
                at += len(buf)
            assert at == (io.sector + io.count) * 512
            self.flushes += io.flush
        elif io.kind == BLKIF_OP_DISCARD:
            self.disk[at:at + io.count * 512] = bytes(io.count * 512)
        else:
            assert io.kind == BLKIF_OP_FLUSH_DISKCACHE
            self.flushes += 1
        return BLKIF_RSP_OKAY

    def serve(self) -> int:
        """One pass of the backend: map, take, do (in a random order when asked), answer."""
        ios = self.take()
        if self.rng is not None:
            self.rng.shuffle(ios)
        for io in ios:
            self.back.complete(io, self.do(io))
        self.back.push()
        return len(ios)

    def run(self, ops: list[Operation]) -> list[Operation]:
        for op in ops:
            self.front.submit(op)
        done: list[Operation] = []
        for _ in range(10_000):
            self.front.push()
            self.serve()
            done += self.front.complete()
            if self.front.idle:
                return done
        raise AssertionError("the operations never finished")



def read(sector: int, count: int) -> Operation:
    return Operation(BLKIF_OP_READ, sector, count)


def write(sector: int, data: bytes) -> Operation:
    return Operation(BLKIF_OP_WRITE, sector, len(data) // 512, data)


# --- engines against each other ---------------------------------------------------------

KINDS = ("read", "write", "discard", "flush")
op_strategy = st.tuples(st.sampled_from(KINDS), st.integers(0, SECTORS - 1),
                        st.integers(1, 700))
MODES = {"plain": (BLKIF_MAX_SEGMENTS, 24), "indirect": (FRONT_MAX_SEGMENTS, 40),
         "tight": (FRONT_MAX_SEGMENTS, 32)}


@settings(max_examples=150, deadline=None)
@given(batches=st.lists(st.lists(op_strategy, min_size=1, max_size=8), min_size=1,
                        max_size=6),
       mode=st.sampled_from(sorted(MODES)), seed=st.integers(0, 2**32))
def test_random_operations_match_a_model_disk(batches, mode, seed) -> None:
    """Batches of operations in flight together (none overlapping a write or discard of
    the same batch, so any order is right), answered in random order: every read returns
    what the model holds, and the backend's disk is the model afterwards.  (The data and
    the order come from ``seed``: drawing megabytes through hypothesis is slow.)"""
    segments, pool = MODES[mode]
    rng = random.Random(seed)
    link = Link(pool=pool, max_segments=segments, rng=rng)
    model = bytearray(link.disk)
    for batch in batches:
        ops, expect, busy = [], [], []
        for kind, sector, count in batch:
            count = min(count, SECTORS - sector)
            span = (sector, sector + count)
            if kind != "flush" and any(a < span[1] and span[0] < b
                                       for a, b, other in busy
                                       if "write" in (kind, other) or "discard" in (kind, other)):
                continue
            if kind == "read":
                ops.append(read(sector, count))
                expect.append(bytes(model[sector * 512:(sector + count) * 512]))
            elif kind == "write":
                data = rng.randbytes(count * 512)
                ops.append(write(sector, data))
                model[sector * 512:(sector + count) * 512] = data
                expect.append(None)
            elif kind == "discard":
                ops.append(Operation(BLKIF_OP_DISCARD, sector, count))
                model[sector * 512:(sector + count) * 512] = bytes(count * 512)
                expect.append(None)
            else:
                ops.append(Operation(BLKIF_OP_FLUSH_DISKCACHE))
                expect.append(None)
            if kind != "flush":
                busy.append((*span, kind))
        done = link.run(ops)
        assert sorted(map(id, done)) == sorted(map(id, ops))
        for op, want in zip(ops, expect, strict=True):
            assert op.status == BLKIF_RSP_OKAY
            if want is not None:
                assert op.result == want
    assert link.disk == model
    assert link.front.counters.bad_responses == link.front.counters.errors == 0
    assert link.back.counters.errors == link.back.counters.unsupported == 0


def test_a_64k_transfer_is_two_plain_requests_or_one_indirect() -> None:
    data = random.Random(1).randbytes(65536)
    for segments, requests in ((BLKIF_MAX_SEGMENTS, 2), (FRONT_MAX_SEGMENTS, 1)):
        link = Link(max_segments=segments)
        assert link.run([write(24, data)])[0].status == BLKIF_RSP_OKAY
        assert link.front.counters.requests == requests
        op = read(24, 128)
        link.run([op])
        assert op.result == data == link.disk[24 * 512:24 * 512 + 65536]
        assert link.front.counters.requests == 2 * requests


def test_an_operation_larger_than_the_pool_waits_for_pages_and_keeps_order() -> None:
    link = Link(pool=32, max_segments=FRONT_MAX_SEGMENTS)  # 128 KiB of pool in all
    data = random.Random(2).randbytes(1 << 20)
    first, after = write(0, data), read(2048, 8)
    for op in (first, after):
        link.front.submit(op)
    link.front.push()
    assert link.front.in_flight == 1  # the pool in one indirect request; the read waits
    done = link.run([])
    assert [op.status for op in done] == [BLKIF_RSP_OKAY] * 2
    assert link.disk[:1 << 20] == data
    assert link.front.counters.requests == 8 + 1
    whole = read(0, 2048)
    link.run([whole])
    assert whole.result == data


def test_many_rounds_wrap_the_ring_and_reuse_every_pool_page() -> None:
    link = Link(pool=48, max_segments=FRONT_MAX_SEGMENTS)
    rng = random.Random(3)
    for round_ in range(400):
        sector = rng.randrange(SECTORS - 64)
        data = rng.randbytes(rng.randrange(1, 64) * 512)
        link.run([write(sector, data)])
        op = read(sector, len(data) // 512)
        link.run([op])
        assert op.result == data, round_
    assert link.back.ring.req_cons > 32 * 20  # wrapped the 32-slot ring many times
    assert sorted(b.gref for b in link.front._free) == [POOL_GREF + i for i in range(48)]


def test_flush_and_discard_and_what_is_not_offered() -> None:
    link = Link()
    ops = [Operation(BLKIF_OP_FLUSH_DISKCACHE), Operation(BLKIF_OP_DISCARD, 10, 30)]
    link.run(ops)
    assert [op.status for op in ops] == [BLKIF_RSP_OKAY] * 2
    assert link.flushes == 1 and link.disk[10 * 512:40 * 512] == bytes(30 * 512)
    assert link.disk[9 * 512:10 * 512] != bytes(512)
    bare = Link(flush=False, discard=False)
    ops = [Operation(BLKIF_OP_FLUSH_DISKCACHE), Operation(BLKIF_OP_DISCARD, 10, 30)]
    bare.run(ops)
    assert [op.status for op in ops] == [BLKIF_RSP_EOPNOTSUPP] * 2
    assert bare.back.counters.unsupported == 2 and bare.flushes == 0


def test_the_frontend_refuses_malformed_operations_of_its_own_user() -> None:
    link = Link()
    for op in (Operation(BLKIF_OP_READ, 0, 0), Operation(BLKIF_OP_WRITE, 0, 2, b"x" * 512),
               Operation(BLKIF_OP_DISCARD, -1, 1), Operation(BLKIF_OP_INDIRECT, 0, 1)):
        with pytest.raises(ValueError):
            link.front.submit(op)
    with pytest.raises(ValueError, match="indirect pages"):
        BlkfrontEngine(FrontRing(bytearray(PAGE), ENTRY_SIZE), [], max_segments=12)
    with pytest.raises(ValueError, match="cannot hold"):
        BlkfrontEngine(FrontRing(bytearray(PAGE), ENTRY_SIZE),
                       [Buffer(1, memoryview(bytearray(PAGE)))], max_segments=2)


# --- hostile frontends ------------------------------------------------------------------

def seg(gref: int = POOL_GREF, first: int = 0, last: int = 7) -> Segment:
    return Segment(gref, first, last)


def raw_header(operation: int, nr: int, ident: int, sector: int) -> bytes:
    return REQUEST_HEADER.pack(operation, nr, 0, ident, sector)


def hostile(link: Link, entries: list[bytes]) -> list[tuple[int, int, int]]:
    """Put raw request entries on the ring, run the backend, return (id, operation,
    status) of each response in order."""
    ring = link.front.ring
    for entry in entries:
        ring.put_request(entry)
    ring.push_requests()
    link.serve()
    return [(r.id, r.operation, r.status) for r in ring.take_responses(unpack_response)]


def plain(operation: int, ident: int, sector: int, segments: tuple[Segment, ...]) -> bytes:
    buf = bytearray(ENTRY_SIZE)
    pack_request(buf, 0, Request(operation, 0, ident, sector, segments))
    return bytes(buf)


def indirect(kind: int, ident: int, sector: int, count: int, grefs: tuple[int, ...]) -> bytes:
    buf = bytearray(ENTRY_SIZE)
    pack_indirect(buf, 0, IndirectRequest(kind, count, 0, ident, sector, grefs))
    return bytes(buf)


def discard(ident: int, sector: int, count: int, flag: int = 0) -> bytes:
    buf = bytearray(ENTRY_SIZE)
    pack_discard(buf, 0, DiscardRequest(0, ident, sector, count, flag))
    return bytes(buf)


def with_segments_in_indirect_page(link: Link, segments: list[Segment]) -> None:
    page = link.pages[INDIRECT_GREF]
    for i, s in enumerate(segments):
        SEGMENT.pack_into(page, i * SEGMENT.size, *s)


E, N = BLKIF_RSP_ERROR, BLKIF_RSP_EOPNOTSUPP
HOSTILE = {
    "ungranted-gref": (plain(BLKIF_OP_WRITE, 1, 0, (seg(77),)), BLKIF_OP_WRITE, E),
    "first-after-last": (plain(BLKIF_OP_READ, 2, 0, (seg(first=5, last=4),)), BLKIF_OP_READ, E),
    "last-past-page": (plain(BLKIF_OP_READ, 3, 0, (seg(first=0, last=8),)), BLKIF_OP_READ, E),
    "no-segments": (raw_header(BLKIF_OP_READ, 0, 4, 0).ljust(ENTRY_SIZE, b"\0"),
                    BLKIF_OP_READ, E),
    "twelve-segments": (raw_header(BLKIF_OP_WRITE, 12, 5, 0).ljust(ENTRY_SIZE, b"\0"),
                        BLKIF_OP_WRITE, E),
    "255-segments": (raw_header(BLKIF_OP_WRITE, 255, 6, 0).ljust(ENTRY_SIZE, b"\0"),
                     BLKIF_OP_WRITE, E),
    "past-the-disk": (plain(BLKIF_OP_WRITE, 7, SECTORS - 7, (seg(),)), BLKIF_OP_WRITE, E),
    "huge-sector": (plain(BLKIF_OP_READ, 8, (1 << 64) - 1, (seg(),)), BLKIF_OP_READ, E),
    "barrier": (plain(BLKIF_OP_WRITE_BARRIER, 9, 0, (seg(),)), BLKIF_OP_WRITE_BARRIER, N),
    "reserved": (plain(BLKIF_OP_RESERVED_1, 10, 0, ()), BLKIF_OP_RESERVED_1, N),
    "unknown-op": (plain(200, 11, 0, (seg(),)), 200, N),
    "flush-twelve": (raw_header(BLKIF_OP_FLUSH_DISKCACHE, 12, 12, 0).ljust(ENTRY_SIZE, b"\0"),
                     BLKIF_OP_FLUSH_DISKCACHE, E),
    "discard-past": (discard(13, SECTORS - 1, 2), BLKIF_OP_DISCARD, E),
    "discard-secure": (discard(14, 0, 2, BLKIF_DISCARD_SECURE), BLKIF_OP_DISCARD, N),
    "indirect-op-flush": (indirect(BLKIF_OP_FLUSH_DISKCACHE, 15, 0, 1, (INDIRECT_GREF,)),
                          BLKIF_OP_INDIRECT, E),
    "indirect-none": (indirect(BLKIF_OP_READ, 16, 0, 0, (INDIRECT_GREF,)), BLKIF_OP_READ, E),
    "indirect-too-many": (indirect(BLKIF_OP_READ, 17, 0, MAX_INDIRECT_SEGMENTS + 1,
                                   (INDIRECT_GREF,)), BLKIF_OP_READ, E),
    "indirect-ungranted-page": (indirect(BLKIF_OP_READ, 18, 0, 1, (78,)), BLKIF_OP_READ, E),
    "indirect-bad-segment": (indirect(BLKIF_OP_WRITE, 19, 0, 2, (INDIRECT_GREF,)),
                             BLKIF_OP_WRITE, E),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_request_is_refused_and_the_backend_goes_on(name: str) -> None:
    entry, operation, status = HOSTILE[name]
    link = Link(max_segments=FRONT_MAX_SEGMENTS)
    with_segments_in_indirect_page(link, [seg(), seg(first=3, last=1)])
    pages_before = {g: bytes(p) for g, p in link.pages.items()}
    disk_before = bytes(link.disk)
    ident = int.from_bytes(entry[8:16], "little")
    assert hostile(link, [entry]) == [(ident, operation, status)]
    assert bytes(link.disk) == disk_before
    assert {g: bytes(p) for g, p in link.pages.items()} == pages_before
    # the same frontend's next, honest request is served
    data = random.Random(4).randbytes(64 * 512)
    assert link.run([write(100, data)])[0].status == BLKIF_RSP_OKAY
    assert link.disk[100 * 512:164 * 512] == data


def test_a_read_only_disk_refuses_writes_and_discards_and_serves_reads() -> None:
    link = Link(read_only=True)
    before = bytes(link.disk)
    answers = hostile(link, [plain(BLKIF_OP_WRITE, 1, 0, (seg(),)), discard(2, 0, 8),
                             plain(BLKIF_OP_FLUSH_DISKCACHE, 3, 0, (seg(),)),
                             plain(BLKIF_OP_READ, 4, 0, (seg(),))])
    assert answers == [(1, BLKIF_OP_WRITE, E), (2, BLKIF_OP_DISCARD, E),
                       (3, BLKIF_OP_FLUSH_DISKCACHE, E), (4, BLKIF_OP_READ, BLKIF_RSP_OKAY)]
    assert bytes(link.disk) == before
    assert link.pages[POOL_GREF].tobytes() == before[:PAGE]


def test_indirect_requests_are_refused_when_not_offered() -> None:
    link = Link(max_segments=FRONT_MAX_SEGMENTS, indirect=0)
    with_segments_in_indirect_page(link, [seg()])
    assert hostile(link, [indirect(BLKIF_OP_READ, 1, 0, 1, (INDIRECT_GREF,))]) == [
        (1, BLKIF_OP_READ, N)]


def test_a_read_into_a_page_granted_read_only_is_refused() -> None:
    link = Link(readonly_grefs=frozenset({POOL_GREF}))
    answers = hostile(link, [plain(BLKIF_OP_READ, 1, 0, (seg(),)),
                             plain(BLKIF_OP_WRITE, 2, 0, (seg(),))])
    assert answers == [(1, BLKIF_OP_READ, E), (2, BLKIF_OP_WRITE, BLKIF_RSP_OKAY)]
    assert link.back.pages[POOL_GREF].readonly


def test_an_indirect_page_rewritten_while_the_backend_maps_changes_nothing() -> None:
    """The frontend names good pages while the backend maps them, then rewrites the
    indirect page to name one it never granted: the request is judged on one copy of the
    page, and refused; and a frontend that keeps naming new pages is not chased for ever."""
    link = Link(max_segments=FRONT_MAX_SEGMENTS)
    with_segments_in_indirect_page(link, [seg(), seg(POOL_GREF + 1)])
    ring = link.front.ring
    ring.put_request(indirect(BLKIF_OP_READ, 1, 0, 2, (INDIRECT_GREF,)))
    ring.push_requests()
    assert link.back.take() == [] and link.back.wanted() == {INDIRECT_GREF}
    link.resolve({INDIRECT_GREF})
    assert link.back.take() == [] and link.back.wanted() == {POOL_GREF, POOL_GREF + 1}
    link.resolve({POOL_GREF, POOL_GREF + 1})
    with_segments_in_indirect_page(link, [seg(), seg(4242)])  # changed its mind
    assert link.back.take() == [] and link.back.wanted() == {4242}
    with_segments_in_indirect_page(link, [seg(), seg(4343)])  # and again
    assert link.back.take(final=True) == [] and link.back.wanted() == set()
    link.back.push()
    assert [(r.id, r.status) for r in ring.take_responses(unpack_response)] == [(1, E)]
    assert link.pages[POOL_GREF].tobytes() == bytes(PAGE)  # nothing was read into it


def test_flush_with_data_is_a_write_made_durable() -> None:
    link = Link()
    link.pages[POOL_GREF][:] = b"\xab" * PAGE
    answers = hostile(link, [plain(BLKIF_OP_FLUSH_DISKCACHE, 9, 40, (seg(first=2, last=3),))])
    assert answers == [(9, BLKIF_OP_FLUSH_DISKCACHE, BLKIF_RSP_OKAY)]
    assert link.disk[40 * 512:42 * 512] == b"\xab" * 1024 and link.flushes == 1


def test_refused_and_mapped_grefs_are_bounded() -> None:
    link = Link()
    link.back.max_grants = 8
    for n in range(20):
        link.back.refuse(10_000 + n)
    assert len(link.back.refused) <= 8
    entries = [plain(BLKIF_OP_WRITE, n, 0, tuple(seg(20_000 + n * 11 + i) for i in range(11)))
               for n in range(4)]
    assert {status for _, _, status in hostile(link, entries)} == {E}
    # 11 good pages, but room for 8: the three past it are refused, never mapped
    entry = plain(BLKIF_OP_WRITE, 9, 0, tuple(seg(POOL_GREF + i) for i in range(11)))
    assert hostile(link, [entry]) == [(9, BLKIF_OP_WRITE, E)]
    assert len(link.back.pages) == 8


def test_impossible_ring_indexes_raise_ring_error() -> None:
    link = Link()
    ring = link.front.ring
    ring._words[0] = 500  # req_prod far past what the ring holds
    with pytest.raises(RingError):
        link.back.take()


# --- a hostile backend ------------------------------------------------------------------

def answer(link: Link, *responses: Response) -> None:
    ring = link.back.ring
    for rsp in responses:
        pack_response(ring.entries, ring.claim_response(), rsp)
    ring.push_responses()


def test_responses_for_ids_never_sent_are_ignored_and_counted() -> None:
    link = Link()
    first, second = read(0, 8), read(8, 8)
    for op in (first, second):
        link.front.submit(op)
    link.front.push()
    raws = link.back.ring.take_requests()
    ids = [int.from_bytes(raw[8:16], "little") for raw in raws]
    link.pages[POOL_GREF][:] = b"\x5a" * PAGE  # the page the first read was given
    answer(link, Response(ids[1] + 1000, BLKIF_OP_READ, BLKIF_RSP_OKAY),
           Response(ids[0], BLKIF_OP_READ, BLKIF_RSP_OKAY))
    assert link.front.complete() == [first] and first.result == b"\x5a" * PAGE
    assert link.front.counters.bad_responses == 1
    assert link.front.in_flight == 1 and second.status == BLKIF_RSP_OKAY  # still waiting
    assert link.front.abort() == [second]


def test_a_response_of_the_wrong_operation_or_status_fails_its_request() -> None:
    for rsp_op, status in ((BLKIF_OP_WRITE, BLKIF_RSP_OKAY), (BLKIF_OP_READ, 5)):
        link = Link()
        op = read(0, 8)
        link.front.submit(op)
        link.front.push()
        [raw] = link.back.ring.take_requests()
        answer(link, Response(int.from_bytes(raw[8:16], "little"), rsp_op, status))
        assert link.front.complete() == [op]
        assert op.status == BLKIF_RSP_ERROR and op.result == b""
        assert link.front.counters.errors == 1
        assert link.front.counters.bad_responses == (rsp_op != BLKIF_OP_READ)


def test_a_failed_part_fails_the_operation_and_the_rest_is_not_sent() -> None:
    link = Link(pool=11)  # one plain request at a time
    op = write(0, bytes(256 * 512))  # 32 pages: three requests
    link.front.submit(op)
    link.front.push()
    [raw] = link.back.ring.take_requests()
    answer(link, Response(int.from_bytes(raw[8:16], "little"), BLKIF_OP_WRITE,
                          BLKIF_RSP_ERROR))
    assert link.front.complete() == [op] and op.status == BLKIF_RSP_ERROR
    assert link.front.idle and link.front.counters.requests == 1


def test_a_backend_answering_more_than_was_asked_breaks_the_ring() -> None:
    link = Link()
    link.front.submit(read(0, 8))
    link.front.push()
    link.back.ring.take_requests()
    ring = link.back.ring
    for _ in range(3):
        pack_response(ring.entries, ring.offset(ring.rsp_prod_pvt),
                      Response(0, BLKIF_OP_READ, 0))
        ring.rsp_prod_pvt += 1
    ring.push_responses()
    with pytest.raises(RingError):
        link.front.complete()


def test_abort_fails_everything_unfinished() -> None:
    link = Link(pool=16)
    ops = [read(0, 128), read(200, 128), Operation(BLKIF_OP_FLUSH_DISKCACHE)]
    for op in ops:
        link.front.submit(op)
    link.front.push()
    assert link.front.in_flight == 2  # 11 + 5 pages; the second read waits for pages
    failed = link.front.abort()
    assert sorted(map(id, failed)) == sorted(map(id, ops))
    assert {op.status for op in ops} == {BLKIF_RSP_ERROR} and link.front.idle
