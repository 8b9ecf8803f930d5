"""Fata's rings against C built from Xen's own headers: ``ring_peer.c`` uses nothing but
``ring.h``'s macros and the ``netif.h``/``blkif.h``/``console.h`` structs, and plays one
end of a tx, rx or blkif ring while Python plays the other over the same shared file,
with eventfds as the event channel.  Every field of every request and response is checked
by the end receiving it, through enough traffic to wrap the ring many times, from index 0
and from just below 2**32.  The C program's ``layout`` mode prints the header's sizes and
offsets, which the Python modules must match byte for byte."""

from __future__ import annotations

import mmap
import os
import select
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fata.xen import blkif, console, netif, ring
from fata.xen.blkif import DiscardRequest, Request, Response, Segment
from fata.xen.netif import (
    GsoInfo,
    HashInfo,
    McastInfo,
    RxRequest,
    RxResponse,
    TxRequest,
    TxResponse,
)
from fata.xen.ring import BackRing, FrontRing

HEADERS = Path("/usr/include/xen/io/ring.h")
pytestmark = [
    pytest.mark.tool("gcc", package="gcc"),
    pytest.mark.skipif(not HEADERS.is_file(),
                       reason=f"needs Xen's public headers ({HEADERS}, package libxen-dev); "
                              "CI installs them"),
]
SOURCE = Path(__file__).with_name("ring_peer.c")
M32 = 0xFFFFFFFF
TIMEOUT = 10.0


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ring_peer.c compiled against /usr/include, warnings as errors."""
    binary = tmp_path_factory.mktemp("ring_peer") / "ring_peer"
    gcc = shutil.which("gcc")
    assert gcc is not None
    subprocess.run([gcc, "-O2", "-Wall", "-Wextra", "-Werror", "-fno-strict-aliasing",
                    "-I/usr/include", "-o", str(binary), str(SOURCE)],
                   check=True, capture_output=True, timeout=60)
    return binary


@pytest.fixture(scope="module")
def layout(peer: Path) -> dict[str, list[int]]:
    """``name -> [offset, size]`` (or ``[value]``) as gcc laid the real structs out."""
    out = subprocess.run([str(peer), "layout"], check=True, capture_output=True, text=True,
                         timeout=10).stdout
    return {name: [int(v) for v in values]
            for name, *values in (line.split() for line in out.splitlines())}


# -- layouts -------------------------------------------------------------------------------

def test_the_shared_ring_header_and_ring_sizes_are_ring_h(layout: dict[str, list[int]]) -> None:
    assert layout["netif_tx_sring.req_prod"] == [ring.REQ_PROD * 4, 4]
    assert layout["netif_tx_sring.req_event"] == [ring.REQ_EVENT * 4, 4]
    assert layout["netif_tx_sring.rsp_prod"] == [ring.RSP_PROD * 4, 4]
    assert layout["netif_tx_sring.rsp_event"] == [ring.RSP_EVENT * 4, 4]
    assert layout["netif_tx_sring.pvt"] == [ring.PVT_OFFSET, ring.PVT_SIZE]
    assert layout["netif_tx_sring.__pad"] == [ring.PAD_OFFSET, ring.PAD_SIZE]
    for tag, entry in (("netif_tx", netif.TX_ENTRY_SIZE), ("netif_rx", netif.RX_ENTRY_SIZE),
                       ("blkif", blkif.ENTRY_SIZE)):
        assert layout[f"{tag}_sring.ring"] == [ring.SHARED_HEADER, entry]
        assert layout[f"entry.{tag}"] == [entry]
        for pages in (1, 2, 4):
            assert layout[f"ring_size.{tag}.{pages}"] == [ring.ring_size(4096 * pages, entry)]
    assert layout["ring_size.netif_tx.1"] == [netif.NET_TX_RING_SIZE] == [256]
    assert layout["ring_size.netif_rx.1"] == [netif.NET_RX_RING_SIZE] == [256]
    assert layout["ring_size.blkif.1"] == [blkif.BLK_RING_SIZE] == [32]


def fields_at(layout: dict[str, list[int]], struct_name: str, raw: bytes | bytearray,
              expected: dict[str, int | bytes], base: int = 0) -> None:
    """Each C field of ``struct_name`` holds ``expected[field]`` in ``raw``, read at gcc's
    offset and size (little-endian; negative values as two's complement)."""
    for field, value in expected.items():
        offset, size = layout[f"{struct_name}.{field}"]
        got = bytes(raw[base + offset:base + offset + size])
        if isinstance(value, bytes):
            assert got == value, field
        else:
            assert int.from_bytes(got, "little", signed=value < 0) == value, field


def test_netif_codecs_put_every_field_where_gcc_does(layout: dict[str, list[int]]) -> None:
    buf = bytearray(16)
    netif.pack_tx_request(buf, 0, TxRequest(0xA1B2C3D4, 0x0123, 0x000F, 0xBEEF, 0x05DC))
    assert layout["sizeof.netif_tx_request"] == [netif.TX_REQUEST.size]
    fields_at(layout, "netif_tx_request", buf,
              {"gref": 0xA1B2C3D4, "offset": 0x0123, "flags": 0xF, "id": 0xBEEF, "size": 1500})
    buf = bytearray(16)
    netif.pack_tx_response(buf, 0, TxResponse(0xBEEF, netif.NETIF_RSP_DROPPED))
    assert layout["sizeof.netif_tx_response"] == [netif.TX_RESPONSE.size]
    fields_at(layout, "netif_tx_response", buf, {"id": 0xBEEF, "status": -2})
    buf = bytearray(b"\xff" * 16)
    netif.pack_rx_request(buf, 0, RxRequest(0xBEEF, 0xA1B2C3D4))
    assert layout["sizeof.netif_rx_request"] == [netif.RX_REQUEST.size]
    fields_at(layout, "netif_rx_request", buf, {"id": 0xBEEF, "pad": 0, "gref": 0xA1B2C3D4})
    buf = bytearray(16)
    netif.pack_rx_response(buf, 0, RxResponse(0x1234, 0x0FFF, 0x1F, netif.NETIF_RSP_ERROR))
    assert layout["sizeof.netif_rx_response"] == [netif.RX_RESPONSE.size]
    fields_at(layout, "netif_rx_response", buf,
              {"id": 0x1234, "offset": 0xFFF, "flags": 0x1F, "status": -1})
    assert layout["sizeof.netif_extra_info"] == [netif.EXTRA_INFO.size]
    buf = bytearray(8)
    netif.pack_gso(buf, 0, GsoInfo(1448, netif.XEN_NETIF_GSO_TYPE_TCPV6, 0x1234,
                                   netif.XEN_NETIF_EXTRA_FLAG_MORE))
    fields_at(layout, "netif_extra_info", buf,
              {"type": netif.XEN_NETIF_EXTRA_TYPE_GSO, "flags": 1, "u.gso.size": 1448,
               "u.gso.type": 2, "u.gso.features": 0x1234})
    buf = bytearray(8)
    netif.pack_mcast(buf, 0, McastInfo(netif.XEN_NETIF_EXTRA_TYPE_MCAST_DEL, b"\x01\x00^\x00\x00\xfb"))
    fields_at(layout, "netif_extra_info", buf,
              {"type": 3, "flags": 0, "u.mcast.addr": b"\x01\x00^\x00\x00\xfb"})
    buf = bytearray(8)
    netif.pack_hash(buf, 0, HashInfo(1, 1, 0xCAFEF00D))
    fields_at(layout, "netif_extra_info", buf,
              {"type": 4, "u.hash.type": 1, "u.hash.algorithm": 1, "u.hash.value": 0xCAFEF00D})


def test_blkif_codecs_put_every_field_where_gcc_does(layout: dict[str, list[int]]) -> None:
    assert layout["sizeof.blkif_request"] == [blkif.REQUEST_SIZE] == [112]
    assert layout["sizeof.blkif_request_segment"] == [blkif.SEGMENT.size]
    segments = tuple(Segment(0xF0000000 | j, j % 8, 7 - j % 8) for j in range(11))
    buf = bytearray(blkif.ENTRY_SIZE)
    blkif.pack_request(buf, 0, Request(blkif.BLKIF_OP_WRITE, 0xCAFE, 0x1122334455667788,
                                       0x8877665544332211, segments))
    fields_at(layout, "blkif_request", buf,
              {"operation": 1, "nr_segments": 11, "handle": 0xCAFE, "id": 0x1122334455667788,
               "sector_number": 0x8877665544332211})
    seg_base, seg_size = layout["blkif_request.seg"]
    assert seg_size == 11 * layout["sizeof.blkif_request_segment"][0]
    for j, seg in enumerate(segments):
        fields_at(layout, "blkif_request_segment", buf,
                  {"gref": seg.gref, "first_sect": seg.first_sect, "last_sect": seg.last_sect},
                  base=seg_base + j * blkif.SEGMENT.size)
    assert layout["sizeof.blkif_request_discard"] == [blkif.DISCARD_SIZE]
    buf = bytearray(blkif.ENTRY_SIZE)
    blkif.pack_discard(buf, 0, DiscardRequest(0xCAFE, 7, 1 << 40, 1 << 33,
                                              blkif.BLKIF_DISCARD_SECURE))
    fields_at(layout, "blkif_request_discard", buf,
              {"operation": blkif.BLKIF_OP_DISCARD, "flag": 1, "handle": 0xCAFE, "id": 7,
               "sector_number": 1 << 40, "nr_sectors": 1 << 33})
    assert layout["sizeof.blkif_request_indirect"] == [blkif.INDIRECT_SIZE]
    buf = bytearray(blkif.ENTRY_SIZE)
    blkif.pack_indirect(buf, 0, blkif.IndirectRequest(blkif.BLKIF_OP_READ, 1000, 0xCAFE, 9, 99,
                                                      (11, 12)))
    fields_at(layout, "blkif_request_indirect", buf,
              {"operation": blkif.BLKIF_OP_INDIRECT, "indirect_op": 0, "nr_segments": 1000,
               "id": 9, "sector_number": 99, "handle": 0xCAFE})
    grefs_at, grefs_size = layout["blkif_request_indirect.indirect_grefs"]
    assert bytes(buf[grefs_at:grefs_at + grefs_size]) == (
        (11).to_bytes(4, "little") + (12).to_bytes(4, "little") + bytes(24))
    assert layout["sizeof.blkif_response"] == [blkif.RESPONSE_SIZE]
    buf = bytearray(blkif.RESPONSE_SIZE)
    blkif.pack_response(buf, 0, Response(0x1122334455667788, blkif.BLKIF_OP_DISCARD,
                                         blkif.BLKIF_RSP_EOPNOTSUPP))
    fields_at(layout, "blkif_response", buf,
              {"id": 0x1122334455667788, "operation": 5, "status": -2})


def test_console_layout_is_xencons_interface(layout: dict[str, list[int]]) -> None:
    assert layout["sizeof.xencons_interface"] == [console.INTERFACE_SIZE]
    assert layout["xencons_interface.in"] == [console.IN, console.IN_SIZE]
    assert layout["xencons_interface.out"] == [console.OUT, console.OUT_SIZE]
    assert layout["xencons_interface.in_cons"] == [console.IN_CONS * 4, 4]
    assert layout["xencons_interface.in_prod"] == [console.IN_PROD * 4, 4]
    assert layout["xencons_interface.out_cons"] == [console.OUT_CONS * 4, 4]
    assert layout["xencons_interface.out_prod"] == [console.OUT_PROD * 4, 4]


def test_every_constant_is_the_headers(layout: dict[str, list[int]]) -> None:
    constants = {name[len("const."):]: value for name, (value,) in
                 ((n, v) for n, v in layout.items() if n.startswith("const."))}
    assert len(constants) > 40
    for name, value in constants.items():
        module = blkif if name.startswith(("BLKIF", "VDISK")) else netif
        assert getattr(module, name) == value, name


# -- the formulas both ends compute (ring_peer.c has the same) -------------------------------

def tx_request(i: int) -> TxRequest:
    return TxRequest((0x9E3779B9 * (i + 1)) & M32, (i * 37) & 0xFFF, i & 0xF, i & 0xFFFF,
                     60 + i % 1455)


TX_STATUS = (netif.NETIF_RSP_OKAY, netif.NETIF_RSP_ERROR, netif.NETIF_RSP_DROPPED,
             netif.NETIF_RSP_NULL)


def tx_response(i: int) -> TxResponse:
    return TxResponse(i & 0xFFFF, TX_STATUS[i % 4])


def rx_request(i: int) -> RxRequest:
    return RxRequest(i & 0xFFFF, 0x80000000 | i)


def rx_response(i: int) -> RxResponse:
    return RxResponse(i & 0xFFFF, (i * 13) & 0xFFF, i & 0x1F,
                      netif.NETIF_RSP_ERROR if i % 9 == 8 else 1 + i % 1514)


def blk_id(i: int) -> int:
    return 0xB10C000000000000 | i


def blk_sector(i: int) -> int:
    return (i << 33) | (i & 0xFFF)


def blk_operation(i: int) -> int:
    if i % 10 == 9:
        return blkif.BLKIF_OP_DISCARD
    if i % 3 == 2:
        return blkif.BLKIF_OP_FLUSH_DISKCACHE
    return blkif.BLKIF_OP_WRITE if i & 1 else blkif.BLKIF_OP_READ


def blk_request(i: int) -> Request | DiscardRequest:
    operation = blk_operation(i)
    if operation == blkif.BLKIF_OP_DISCARD:
        return DiscardRequest(0x51, blk_id(i), blk_sector(i), 1000 + i,
                              blkif.BLKIF_DISCARD_SECURE if i & 1 else 0)
    count = 0 if operation == blkif.BLKIF_OP_FLUSH_DISKCACHE else 1 + i % 11
    return Request(operation, 0x51, blk_id(i), blk_sector(i),
                   tuple(Segment(i * 16 + j, (i + j) % 8, 7) for j in range(count)))


def blk_response(i: int) -> Response:
    if i % 13 == 12:
        status = blkif.BLKIF_RSP_ERROR
    elif blk_operation(i) == blkif.BLKIF_OP_DISCARD and i & 1:
        status = blkif.BLKIF_RSP_EOPNOTSUPP
    else:
        status = blkif.BLKIF_RSP_OKAY
    return Response(blk_id(i), blk_operation(i), status)


def pack_blk_request(buf: memoryview, offset: int, req: Request | DiscardRequest) -> None:
    if isinstance(req, DiscardRequest):
        blkif.pack_discard(buf, offset, req)
    else:
        blkif.pack_request(buf, offset, req)


def unpack_blk_request(buf: memoryview, offset: int) -> Request | DiscardRequest:
    if blkif.operation_of(buf, offset) == blkif.BLKIF_OP_DISCARD:
        return blkif.unpack_discard(buf, offset)
    return blkif.unpack_request(buf, offset)


@dataclass(frozen=True)
class Protocol:
    """One ring type: its entry size and how each end makes and reads its entries."""

    name: str
    entry_size: int
    request: Callable[[int], Any]
    pack_request: Callable[[memoryview, int, Any], None]
    unpack_request: Callable[[memoryview, int], Any]
    response: Callable[[int], Any]
    pack_response: Callable[[memoryview, int, Any], None]
    unpack_response: Callable[[memoryview, int], Any]


PROTOCOLS = {
    "tx": Protocol("tx", netif.TX_ENTRY_SIZE, tx_request, netif.pack_tx_request,
                   netif.unpack_tx_request, tx_response, netif.pack_tx_response,
                   netif.unpack_tx_response),
    "rx": Protocol("rx", netif.RX_ENTRY_SIZE, rx_request, netif.pack_rx_request,
                   netif.unpack_rx_request, rx_response, netif.pack_rx_response,
                   netif.unpack_rx_response),
    "blk": Protocol("blk", blkif.ENTRY_SIZE, blk_request, pack_blk_request, unpack_blk_request,
                    blk_response, blkif.pack_response, blkif.unpack_response),
}
BATCHES = (1, 5, 37, 2, 256, 11, 3, 64)  # Python's pushes land at every phase of the ring


# -- the Python ends -------------------------------------------------------------------------

class Channel:
    """Our end of the event channel: kick the C end's eventfd, wait on ours (or on the C
    process exiting, through its pidfd), never longer than TIMEOUT."""

    def __init__(self, wait_fd: int, kick_fd: int, pidfd: int) -> None:
        self.wait_fd, self.kick_fd = wait_fd, kick_fd
        self.poll = select.poll()
        self.poll.register(wait_fd, select.POLLIN)
        self.poll.register(pidfd, select.POLLIN)
        self.kicks = self.waits = 0

    def kick(self) -> None:
        os.eventfd_write(self.kick_fd, 1)
        self.kicks += 1

    def wait(self) -> None:
        ready = dict(self.poll.poll(TIMEOUT * 1000))
        if self.wait_fd not in ready:
            raise AssertionError("the C end exited" if ready else
                                 f"no notification from the C end in {TIMEOUT} s (lost wake-up)")
        os.eventfd_read(self.wait_fd)
        self.waits += 1


def python_front(ring_: FrontRing, proto: Protocol, count: int, channel: Channel) -> None:
    sent = got = rounds = 0
    while got < count:
        batch = min(ring_.free_requests, count - sent, BATCHES[rounds % len(BATCHES)])
        rounds += 1
        for _ in range(batch):
            proto.pack_request(ring_.entries, ring_.claim_request(), proto.request(sent))
            sent += 1
        if ring_.push_requests():
            channel.kick()
        for rsp in ring_.take_responses(proto.unpack_response):
            assert rsp == proto.response(got), f"response {got}"
            got += 1
        if got == count:
            break
        if sent < count and not ring_.full:
            continue
        if not ring_.final_check_for_responses():
            channel.wait()


def python_back(ring_: BackRing, proto: Protocol, count: int, channel: Channel) -> None:
    done = rounds = 0
    while done < count:
        for req in ring_.take_requests(proto.unpack_request,
                                       limit=BATCHES[rounds % len(BATCHES)]):
            assert req == proto.request(done), f"request {done}"
            proto.pack_response(ring_.entries, ring_.claim_response(), proto.response(done))
            done += 1
        rounds += 1
        if ring_.push_responses():
            channel.kick()
        if done == count:
            break
        if not ring_.final_check_for_requests():
            channel.wait()


@pytest.fixture
def eventfds() -> Iterator[tuple[int, int]]:
    """(ours, theirs): the C end kicks ours and waits on theirs."""
    fds = os.eventfd(0, os.EFD_CLOEXEC), os.eventfd(0, os.EFD_CLOEXEC)
    yield fds
    for fd in fds:
        os.close(fd)


def run_against_c(peer: Path, tmp_path: Path, eventfds: tuple[int, int], proto: Protocol,
                  python_end: str, start: int, count: int, ring_bytes: int = 4096) -> None:
    path = tmp_path / "ring"
    path.write_bytes(bytes(ring_bytes))
    ours, theirs = eventfds
    c_end = "back" if python_end == "front" else "front"
    with path.open("r+b") as f, mmap.mmap(f.fileno(), ring_bytes) as shared:
        front: FrontRing | None = None
        back: BackRing | None = None
        if python_end == "front":  # the front initialises the ring before the back attaches
            front = FrontRing(shared, proto.entry_size, start=start)
        proc = subprocess.Popen(
            [str(peer), f"{proto.name}-{c_end}", str(path), str(ring_bytes), str(start),
             str(count), str(theirs), str(ours)],
            pass_fds=(ours, theirs), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        pidfd = os.pidfd_open(proc.pid)
        channel = Channel(ours, theirs, pidfd)
        try:
            if front is not None:
                python_front(front, proto, count, channel)
            else:
                channel.wait()  # the C front says it has initialised the ring
                back = BackRing(shared, proto.entry_size, start=start)
                python_back(back, proto, count, channel)
            out, err = proc.communicate(timeout=TIMEOUT)
        except AssertionError as exc:
            proc.kill()
            out, err = proc.communicate(timeout=TIMEOUT)
            raise AssertionError(f"{exc}; the C end said: {err.strip() or 'nothing'}") from exc
        except BaseException:
            proc.kill()
            proc.communicate(timeout=TIMEOUT)
            raise
        finally:
            os.close(pidfd)
            for end in (front, back):  # so that the mapping can close, even after a failure
                if end is not None:
                    end.release()
    assert proc.returncode == 0, err
    words = out.split()
    assert words[:4] == ["requests", str(count), "responses", str(count)], out
    c_kicks, c_waits = int(words[5]), int(words[7])
    # Each wake-up consumed at least one kick (several merge into one, as pending bits do).
    assert c_waits <= channel.kicks and channel.waits <= c_kicks, out


CASES = [(name, end) for name in PROTOCOLS for end in ("front", "back")]


@pytest.mark.parametrize("start", [0, 2**32 - 700], ids=["from-0", "across-2**32"])
@pytest.mark.parametrize(("protocol", "python_end"), CASES,
                         ids=[f"{name}-python-{end}" for name, end in CASES])
def test_2000_requests_cross_between_python_and_c(peer: Path, tmp_path: Path,
                                                 eventfds: tuple[int, int], protocol: str,
                                                 python_end: str, start: int) -> None:
    run_against_c(peer, tmp_path, eventfds, PROTOCOLS[protocol], python_end, start, 2000)


@pytest.mark.parametrize(("protocol", "ring_bytes"), [("tx", 4 * 4096), ("blk", 2 * 4096)])
@pytest.mark.parametrize("python_end", ["front", "back"])
def test_multi_page_rings_agree_with_c(peer: Path, tmp_path: Path, eventfds: tuple[int, int],
                                       protocol: str, ring_bytes: int, python_end: str) -> None:
    run_against_c(peer, tmp_path, eventfds, PROTOCOLS[protocol], python_end, 2**32 - 3000,
                  5000, ring_bytes)
