"""The PV console page: ``struct xencons_interface``'s layout (offsets as gcc computes them
are checked in ``test_ring_interop.py``), the guest printing into ``out`` and reading
``in``, indexes free-running across 2**32, and a peer's impossible indexes refused."""

from __future__ import annotations

import struct

import pytest
from fata.xen.console import ConsoleRing
from fata.xen.ring import RingError
from hypothesis import given, settings
from hypothesis import strategies as st


def indexes(page: bytearray) -> tuple[int, int, int, int]:
    """in_cons in_prod out_cons out_prod, as the C struct lays them out."""
    return struct.unpack_from("<4I", page, 3072)


def test_the_guest_prints_into_out_and_reads_in() -> None:
    page = bytearray(4096)
    guest, daemon = ConsoleRing(page, backend=False), ConsoleRing(page, backend=True)
    assert guest.write(b"booting\n") == 8
    assert page[1024:1032] == b"booting\n" and indexes(page) == (0, 0, 0, 8)
    assert daemon.input_pending() and not guest.input_pending()
    assert daemon.read() == b"booting\n" and indexes(page) == (0, 0, 8, 8)
    assert daemon.write(b"ls\r") == 3
    assert page[0:3] == b"ls\r" and indexes(page) == (0, 3, 8, 8)
    assert guest.read(2) == b"ls" and guest.read() == b"\r"
    assert indexes(page) == (3, 3, 8, 8)


def test_each_direction_has_its_own_size_and_stops_when_full() -> None:
    page = bytearray(4096)
    guest, daemon = ConsoleRing(page, backend=False), ConsoleRing(page, backend=True)
    assert guest.output_room() == 2048 and daemon.output_room() == 1024
    assert guest.write(bytes(3000)) == 2048 and guest.write(b"x") == 0
    assert daemon.write(b"k" * 1500) == 1024 and daemon.output_room() == 0
    assert len(daemon.read(100)) == 100 and guest.output_room() == 100


def test_indexes_wrap_around_two_to_the_32() -> None:
    page = bytearray(4096)
    start = 2**32 - 10
    struct.pack_into("<4I", page, 3072, start, start, start, start)
    guest, daemon = ConsoleRing(page, backend=False), ConsoleRing(page, backend=True)
    text = bytes(i % 251 for i in range(2048))
    assert guest.write(text) == 2048
    assert daemon.read() == text
    assert indexes(page)[2:] == (2038, 2038)
    # Stream offset 2**32 - 10 is byte 2038 of out: the text starts there and wraps.
    assert page[1024 + 2038:1024 + 2048] == text[:10] and page[1024:1024 + 10] == text[10:20]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=1500), min_size=1, max_size=12),
       st.integers(0, 0xFFFFFFFF), st.lists(st.integers(1, 900), min_size=1, max_size=6))
def test_any_stream_arrives_whole_and_in_order(chunks: list[bytes], start: int,
                                               reads: list[int]) -> None:
    page = bytearray(4096)
    struct.pack_into("<2I", page, 3072, start, start)
    guest, daemon = ConsoleRing(page, backend=False), ConsoleRing(page, backend=True)
    sent = b"".join(chunks)
    pending, got, i = memoryview(sent), bytearray(), 0
    while len(got) < len(sent):
        pending = pending[daemon.write(pending):]
        got += guest.read(reads[i % len(reads)])
        i += 1
    assert bytes(got) == sent


def test_a_peer_with_impossible_indexes_is_refused() -> None:
    page = bytearray(4096)
    struct.pack_into("<4I", page, 3072, 0, 1025, 0, 2049)
    with pytest.raises(RingError, match="1025 bytes apart"):
        ConsoleRing(page, backend=False).read()
    with pytest.raises(RingError, match="2049 bytes apart"):
        ConsoleRing(page, backend=True).read()
    with pytest.raises(RingError):
        ConsoleRing(page, backend=True).write(b"x")  # the guest consumed past our producer
    with pytest.raises(ValueError, match="3088 bytes"):
        ConsoleRing(bytearray(3000), backend=False)
