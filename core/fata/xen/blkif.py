"""The block device's ring entries (``xen/io/blkif.h``): what blkfront and blkback put in
the slots of their :mod:`fata.xen.ring` ring, as struct codecs.

A request names an operation (``BLKIF_OP_*``), the guest's ``id`` (echoed in the response,
so responses may come back in any order relative to the requests' meaning, though always
one per slot), a start sector and, for reads and writes, up to 11 segments: each a granted
page and the inclusive range of 512-byte sectors of it to transfer (``first_sect``,
``last_sect``, 0..7 in a 4 KiB page).  Discard has its own layout (a sector count instead
of segments); indirect requests name pages that hold the segments.

Layouts are little-endian x86-64, checked against gcc on the real header
(``tests/xen/test_ring.py``): the request is 112 bytes (header 24, segments 8 each), the
response 16 (``id`` u64, ``operation`` u8 at 8, ``status`` i16 at 10, 4 bytes of tail
padding), the slot the larger, so one 4 KiB page holds 32.  The first byte of every request
layout is the operation: read it with :func:`operation_of` to choose the decoder.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from fata.xen.ring import PAGE, ring_size

BLKIF_OP_READ = 0
BLKIF_OP_WRITE = 1
BLKIF_OP_WRITE_BARRIER = 2
BLKIF_OP_FLUSH_DISKCACHE = 3
BLKIF_OP_RESERVED_1 = 4
BLKIF_OP_DISCARD = 5
BLKIF_OP_INDIRECT = 6

BLKIF_MAX_SEGMENTS_PER_REQUEST = 11
BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST = 8
BLKIF_DISCARD_SECURE = 1 << 0

BLKIF_RSP_EOPNOTSUPP = -2  # the operation is not supported (barriers, flushes, discard)
BLKIF_RSP_ERROR = -1  # it failed (-EIO)
BLKIF_RSP_OKAY = 0

VDISK_CDROM = 0x1
VDISK_REMOVABLE = 0x2
VDISK_READONLY = 0x4

SECTOR_SIZE = 512  # the unit of sector_number, first_sect and last_sect, whatever the disk's

REQUEST_HEADER = struct.Struct("<BBH4xQQ")  # operation nr_segments handle (pad) id sector
SEGMENT = struct.Struct("<IBB2x")  # gref first_sect last_sect (pad)
DISCARD = struct.Struct("<BBH4xQQQ")  # operation flag handle (pad) id sector nr_sectors
INDIRECT = struct.Struct("<BBH4xQQH2x8I")  # op indirect_op nr_segments id sector handle grefs
RESPONSE = struct.Struct("<QBxh")  # id operation (pad) status

REQUEST_SIZE = REQUEST_HEADER.size + BLKIF_MAX_SEGMENTS_PER_REQUEST * SEGMENT.size  # 112
DISCARD_SIZE = DISCARD.size  # 32
INDIRECT_SIZE = 64  # sizeof(struct blkif_request_indirect): 60 bytes and tail padding
RESPONSE_SIZE = 16  # sizeof(struct blkif_response): 12 bytes and tail padding
ENTRY_SIZE = max(REQUEST_SIZE, RESPONSE_SIZE)  # 112: union blkif_sring_entry
BLK_RING_SIZE = ring_size(PAGE, ENTRY_SIZE)  # 32


class Segment(NamedTuple):
    """``blkif_request_segment``: sectors ``first_sect..last_sect`` (inclusive) of the
    granted page ``gref``."""

    gref: int
    first_sect: int
    last_sect: int


class Request(NamedTuple):
    """``blkif_request``: read, write, barrier or flush ``segments`` from ``sector_number``
    of the virtual disk ``handle``."""

    operation: int
    handle: int
    id: int
    sector_number: int
    segments: tuple[Segment, ...] = ()


class DiscardRequest(NamedTuple):
    """``blkif_request_discard``: forget ``nr_sectors`` from ``sector_number`` (securely
    with ``BLKIF_DISCARD_SECURE``)."""

    handle: int
    id: int
    sector_number: int
    nr_sectors: int
    flag: int = 0


class IndirectRequest(NamedTuple):
    """``blkif_request_indirect``: ``indirect_op`` (read or write) with ``nr_segments``
    segments held in the pages ``indirect_grefs`` (up to 8)."""

    indirect_op: int
    nr_segments: int
    handle: int
    id: int
    sector_number: int
    indirect_grefs: tuple[int, ...]


class Response(NamedTuple):
    """``blkif_response``: request ``id`` (an ``operation``) ended with ``status``."""

    id: int
    operation: int
    status: int


def operation_of(buf: memoryview | bytes | bytearray, offset: int = 0) -> int:
    """The ``operation`` byte every request layout starts with."""
    return buf[offset]


def pack_request(buf: memoryview | bytearray, offset: int, req: Request) -> None:
    """Write a read/write/barrier/flush request; unused segment slots are left as they
    were (the back reads only ``nr_segments`` of them, as C callers leave them)."""
    segments = req.segments
    if len(segments) > BLKIF_MAX_SEGMENTS_PER_REQUEST:
        raise ValueError(f"{len(segments)} segments (at most "
                         f"{BLKIF_MAX_SEGMENTS_PER_REQUEST}; use an indirect request)")
    REQUEST_HEADER.pack_into(buf, offset, req.operation, len(segments), req.handle, req.id,
                             req.sector_number)
    at = offset + REQUEST_HEADER.size
    for seg in segments:
        SEGMENT.pack_into(buf, at, *seg)
        at += SEGMENT.size


def unpack_request(buf: memoryview | bytes | bytearray, offset: int = 0) -> Request:
    """Read a read/write/barrier/flush request.  A ``nr_segments`` above 11 is the
    front's error: ValueError, for the back to answer ``BLKIF_RSP_ERROR``."""
    operation, count, handle, id_, sector = REQUEST_HEADER.unpack_from(buf, offset)
    if count > BLKIF_MAX_SEGMENTS_PER_REQUEST:
        raise ValueError(f"request {id_:#x} has {count} segments (at most "
                         f"{BLKIF_MAX_SEGMENTS_PER_REQUEST})")
    base = offset + REQUEST_HEADER.size
    step = SEGMENT.size
    segments = tuple(Segment._make(SEGMENT.unpack_from(buf, base + i * step))
                     for i in range(count))
    return Request(operation, handle, id_, sector, segments)


def pack_discard(buf: memoryview | bytearray, offset: int, req: DiscardRequest) -> None:
    DISCARD.pack_into(buf, offset, BLKIF_OP_DISCARD, req.flag, req.handle, req.id,
                      req.sector_number, req.nr_sectors)


def unpack_discard(buf: memoryview | bytes | bytearray, offset: int = 0) -> DiscardRequest:
    operation, flag, handle, id_, sector, count = DISCARD.unpack_from(buf, offset)
    if operation != BLKIF_OP_DISCARD:
        raise ValueError(f"operation {operation} is not a discard")
    return DiscardRequest(handle, id_, sector, count, flag)


def pack_indirect(buf: memoryview | bytearray, offset: int, req: IndirectRequest) -> None:
    grefs = tuple(req.indirect_grefs)
    if len(grefs) > BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST:
        raise ValueError(f"{len(grefs)} indirect pages (at most "
                         f"{BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST})")
    grefs += (0,) * (BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST - len(grefs))
    INDIRECT.pack_into(buf, offset, BLKIF_OP_INDIRECT, req.indirect_op, req.nr_segments,
                       req.id, req.sector_number, req.handle, *grefs)


def unpack_indirect(buf: memoryview | bytes | bytearray, offset: int = 0) -> IndirectRequest:
    """Read an indirect request; ``indirect_grefs`` holds the pages its ``nr_segments``
    need (512 segments of 8 bytes per page), the rest of the array is not the front's."""
    operation, op, count, id_, sector, handle, *grefs = INDIRECT.unpack_from(buf, offset)
    if operation != BLKIF_OP_INDIRECT:
        raise ValueError(f"operation {operation} is not indirect")
    pages = -(-count * SEGMENT.size // PAGE)
    if pages > BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST:
        raise ValueError(f"indirect request {id_:#x} has {count} segments "
                         f"({pages} pages, at most {BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST})")
    return IndirectRequest(op, count, handle, id_, sector, tuple(grefs[:pages]))


def pack_response(buf: memoryview | bytearray, offset: int, rsp: Response) -> None:
    RESPONSE.pack_into(buf, offset, *rsp)


def unpack_response(buf: memoryview | bytes | bytearray, offset: int = 0) -> Response:
    return Response._make(RESPONSE.unpack_from(buf, offset))
