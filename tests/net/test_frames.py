"""Batched frame I/O: the ``_frames`` C module, both TAP read paths, and the stack's batch path.

A TAP is a character device giving one frame per read; an ``AF_UNIX`` datagram socketpair
behaves the same way for ``read``/``writev``, so the I/O is tested here without root.  The
real TAP is exercised by ``test_tap.py`` (both paths too).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import struct

import pytest
from fata.devices import ReplyCache
from fata.devices.netif import Netif
from fata.net import arp, checksum, ethernet, ipv4, udp
from fata.net.ipv4 import Ipv4Config
from fata.net.stack import DirectStack
from fata.platform import fdnetif as tap
from fata.platform.fdnetif import VNET_HDR
from fata.platform.tap import TapNetif


def _frames_module():
    """The C module, which must exist wherever it could have been built."""
    if tap._frames is not None:
        return tap._frames
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler at install time, so no fata.platform._frames")
    pytest.fail("a C compiler is here but fata.platform._frames was not built: run `make setup`")


@pytest.fixture
def pair():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


def test_read_frames_strips_the_header_and_reports_vouching(pair) -> None:
    frames = _frames_module()
    a, b = pair
    b.send(b"\x01" + bytes(9) + b"needs-csum")
    b.send(b"\x02" + bytes(9) + b"data-valid")
    b.send(bytes(10) + b"plain")
    b.send(b"short")  # shorter than the header: skipped
    got, trusted = frames.read_frames(a.fileno(), 64, 10)
    assert got == [b"needs-csum", b"data-valid", b"plain"]
    assert trusted == b"\x01\x01\x00"
    assert frames.read_frames(a.fileno(), 64, 10) == ([], b"")  # EAGAIN: an empty batch


def test_read_frames_large_and_small_alternating(pair) -> None:
    """Large frames leave in the buffer they were read into, small ones are copied out."""
    frames = _frames_module()
    a, b = pair
    a.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    b.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    sizes = [60, 65000, 2048, 2049, 1, 30000, 65536 + 256]
    sent = [os.urandom(n) for n in sizes]
    for data in sent:
        b.send(bytes(10) + data)
    got, trusted = frames.read_frames(a.fileno(), 64, 10, 1 << 30)
    assert got == sent and trusted == bytes(len(sent))
    for data in sent[:3]:
        b.send(bytes(10) + data)
    got, _ = frames.read_frames(a.fileno(), 64, 10, 1000)  # ends once 1000 bytes are read
    assert got == sent[:2]
    assert frames.read_frames(a.fileno(), 64, 10)[0] == sent[2:3]


def test_read_frames_stops_at_the_limit_and_without_a_header(pair) -> None:
    frames = _frames_module()
    a, b = pair
    for i in range(5):
        b.send(bytes([i]) * 20)
    got, trusted = frames.read_frames(a.fileno(), 3, 0)
    assert got == [bytes([i]) * 20 for i in range(3)] and trusted == bytes(3)
    got, _ = frames.read_frames(a.fileno(), 3, 0)
    assert got == [bytes([3]) * 20, bytes([4]) * 20]


def test_read_frames_on_a_closed_fd_is_an_empty_batch() -> None:
    frames = _frames_module()
    r, w = os.pipe()
    os.close(r)
    os.close(w)
    assert frames.read_frames(r, 8, 0) == ([], b"")
    with pytest.raises(ValueError):
        frames.read_frames(0, 0, 0)
    with pytest.raises(ValueError):
        frames.read_frames(0, 8, 100)


def test_write_frames_pieces_header_and_drops(pair) -> None:
    frames = _frames_module()
    a, b = pair
    dropped = frames.write_frames(a.fileno(), b"HDR", [
        b"one", (b"t", bytearray(b"w"), memoryview(b"o!")), (b"three",)])
    assert dropped == 0
    assert [b.recv(100) for _ in range(3)] == [b"HDRone", b"HDRtwo!", b"HDRthree"]
    assert frames.write_frames(a.fileno(), b"", [b"bare"]) == 0
    assert b.recv(100) == b"bare"
    with pytest.raises(ValueError):
        frames.write_frames(a.fileno(), b"", [tuple([b"x"] * 9)])
    with pytest.raises(TypeError):
        frames.write_frames(a.fileno(), b"", [42])
    with pytest.raises(TypeError):
        frames.write_frames(a.fileno(), b"", (b"not a list",))
    # a full queue drops, as a wire does, and says how many
    sent = 0
    while True:
        try:
            a.send(b"x" * 1000)
            sent += 1
        except BlockingIOError:
            break
    assert sent > 0
    assert frames.write_frames(a.fileno(), b"", [b"y" * 1000] * 3) == 3
    assert frames.write_frames(-1, b"", [b"z"]) == 1


PATHS = [pytest.param(True, id="c"), pytest.param(False, id="python")]


@pytest.mark.parametrize("with_c", PATHS)
def test_tap_netif_batches_both_ways(pair, monkeypatch, with_c: bool) -> None:
    """The same batches reach the stack, and the same bytes leave, with or without C."""
    if with_c:
        _frames_module()
    else:
        monkeypatch.setattr(tap, "_frames", None)
    a, b = pair

    async def main() -> None:
        netif = TapNetif(os.dup(a.fileno()), "test0", b"\x02\0\0\0\0\x01", 1500, True)
        batches: list[tuple[list[bytes], bytes]] = []
        singles: list[tuple[bytes, bool]] = []
        got = asyncio.Event()

        def on_batch(frames, trusted) -> None:
            batches.append((list(frames), trusted))
            got.set()

        netif.start(lambda f, t: singles.append((f, t)), on_batch)
        for i in range(40):
            b.send(VNET_HDR.pack(i & 1, 0, 0, 0, 0, 0) + bytes([i]) * 60)
        await asyncio.wait_for(got.wait(), 5)
        assert not singles
        frames = [f for batch, _ in batches for f in batch]
        trusted = b"".join(t for _, t in batches)
        assert frames == [bytes([i]) * 60 for i in range(40)]
        assert trusted == bytes(i & 1 for i in range(40))
        assert netif.rx_frames == 40
        netif.send_many([(b"eth", b"ip", b"data"), (b"second",)], csum_start=34, csum_offset=6)
        netif.send_many([(b"plain",)])
        expect = VNET_HDR.pack(1, 0, 0, 0, 34, 6)
        assert b.recv(100) == expect + b"ethipdata"
        assert b.recv(100) == expect + b"second"
        assert b.recv(100) == VNET_HDR.pack(0, 0, 0, 0, 0, 0) + b"plain"
        assert netif.tx_frames == 3 and netif.tx_drops == 0
        netif.close()
        netif.send_many([(b"after close",)])
        assert netif.tx_drops == 1

    asyncio.run(main())


# ------------------------------------------------------------------ the stack's batch path

OURS = ipv4.addr("10.9.0.2")
PEER = ipv4.addr("10.9.0.1")
PEER_MAC = b"\x02\0\0\0\0\x09"


class Recorder(Netif):
    """Records what the stack sends, finishing offloaded checksums as a device would."""

    def __init__(self, offload: bool) -> None:
        self.mac = b"\x02\0\0\0\0\x02"
        self.mtu = 1500
        self.csum_offload = offload
        self.sent: list[bytes] = []
        self.calls = 0

    def start(self, receiver, batch_receiver=None, *, wire=False) -> None:
        pass

    def close(self) -> None:
        pass

    def send(self, frame, *, csum_start: int = 0, csum_offset: int = 0, gso_size: int = 0):
        data = bytearray(b"".join(frame) if isinstance(frame, list) else frame)
        if csum_start:
            field = csum_start + csum_offset
            data[field:field + 2] = struct.pack("!H", checksum.checksum(data[csum_start:]))
        self.sent.append(bytes(data))

    def send_many(self, frames, *, csum_start: int = 0, csum_offset: int = 0) -> None:
        self.calls += 1
        super().send_many(frames, csum_start=csum_start, csum_offset=csum_offset)


def _stack(offload: bool, *, peer_known: bool = True) -> tuple[Recorder, DirectStack]:
    """A stack at OURS on a Recorder (call it from the event loop), the peer's MAC in its
    ARP cache unless ``peer_known`` is false."""
    netif = Recorder(offload)
    stack = DirectStack(netif, Ipv4Config.from_text("10.9.0.2/24"))
    if peer_known:
        stack.arp.cache[PEER] = (PEER_MAC, stack.loop.time() + 60)
    return netif, stack


def _udp_frame(payload: bytes, sport: int, dport: int = 53, *, bad_ip: bool = False) -> bytes:
    pseudo = checksum.pseudo_header_ipv4(PEER, OURS, udp.PROTO, udp.HEADER_LEN + len(payload))
    datagram = udp.build(sport, dport, payload, pseudo)
    header = bytearray(ipv4.header(PEER, OURS, ipv4.PROTO_UDP, len(datagram), 7))
    if bad_ip:
        header[10] ^= 0xFF
    return b"\x02\0\0\0\0\x02" + PEER_MAC + b"\x08\x00" + bytes(header) + datagram


def _arp_request() -> bytes:
    return arp.build(arp.OP_REQUEST, PEER_MAC, PEER, bytes(6), OURS, ethernet.BROADCAST)


@pytest.mark.parametrize("offload", [True, False], ids=["offload", "no-offload"])
def test_batch_replies_match_the_general_path_and_keep_their_order(offload: bool) -> None:
    async def main() -> None:
        netif, stack = _stack(offload)
        await stack.udp_listen("10.9.0.2", 53, lambda data, peer: data[::-1] + str(peer[0]).encode())
        batch = [_udp_frame(b"first", 1001), _udp_frame(b"second", 1002), _arp_request(),
                 _udp_frame(b"bad", 1003, bad_ip=True), _udp_frame(b"closed", 1004, dport=54),
                 _udp_frame(b"third", 1005), _udp_frame(b"odd-length!", 1006)]
        stack._on_frames(batch, b"\x01" * len(batch))
        sent = netif.sent
        # first, second; the ARP reply; port unreachable; third, odd-length
        assert len(sent) == 6, [s[12:14] for s in sent]
        assert sent[2][12:14] == b"\x08\x06"
        assert sent[3][23] == ipv4.PROTO_ICMP
        replies = [sent[0], sent[1], sent[4], sent[5]]
        for frame, (payload, port) in zip(replies, [(b"first", 1001), (b"second", 1002),
                                                    (b"third", 1005), (b"odd-length!", 1006)],
                                          strict=True):
            assert frame[:14] == PEER_MAC + netif.mac + b"\x08\x00"
            hdr, body = ipv4.parse(memoryview(frame)[14:])
            assert (hdr.src, hdr.dst) == (OURS, PEER)
            sport, dport, data = udp.parse(body, hdr.src, hdr.dst, True)
            assert (sport, dport, bytes(data)) == (53, port, payload[::-1] + b"10.9.0.1")
            # byte for byte what the general path sends, but for the IP ident (and checksum)
            netif.sent = []
            stack.udp_send(OURS, 53, PEER, port, bytes(data))
            general = netif.sent[0]
            assert frame[:18] + frame[20:24] + frame[26:] == \
                general[:18] + general[20:24] + general[26:]
        assert stack.stats()["ipv4_bad_checksum"] == 1
        assert stack.stats()["udp_closed_port"] == 1
        await stack.close()

    asyncio.run(main())


def test_first_reply_to_an_unknown_peer_goes_the_general_way_then_fast() -> None:
    async def main() -> None:
        netif, stack = _stack(True, peer_known=False)
        await stack.udp_listen("0.0.0.0", 53, lambda data, peer: b"ok")
        stack._on_frames([_udp_frame(b"q1", 1001)], b"\x01")
        assert netif.sent[-1][12:14] == b"\x08\x06"  # no MAC yet: an ARP request
        assert netif.calls == 0
        stack.arp.cache[PEER] = (PEER_MAC, stack.loop.time() + 60)
        stack._on_frames([_udp_frame(b"q2", 1002), _udp_frame(b"q3", 1003)], b"\x01\x01")
        assert netif.calls == 1  # q2 learnt the route and went the general way; q3 batched
        assert [f[36:38] for f in netif.sent[-2:]] == [b"\x03\xea", b"\x03\xeb"]
        await stack.close()

    asyncio.run(main())


def test_fast_path_answers_from_the_reply_cache() -> None:
    async def main() -> None:
        netif, stack = _stack(True)
        calls: list[bytes] = []
        cache: dict[bytes, bytes] = {}

        def handler(data: bytes, peer: tuple[str, int]) -> bytes:
            calls.append(data)
            cache[data[2:]] = b"!" + data[2:]
            return data[:2] + b"!" + data[2:]

        await stack.udp_listen("10.9.0.2", 53, handler, reply_cache=ReplyCache(cache, 2))
        batch = [_udp_frame(b"01same", 1001), _udp_frame(b"02same", 1002),
                 _udp_frame(b"03other", 1003), _udp_frame(b"04same", 1004)]
        stack._on_frames(batch, b"\x01" * 4)
        assert calls == [b"01same", b"03other"]
        assert [f[42:] for f in netif.sent] == [b"01!same", b"02!same", b"03!other", b"04!same"]
        await stack.close()

    asyncio.run(main())


def test_a_reply_of_the_wrong_type_is_a_handler_error_not_a_lost_batch() -> None:
    async def main() -> None:
        netif, stack = _stack(True)
        answers = {b"text": "not bytes", b"array": bytearray(b"array!"), b"fine": b"fine!"}
        await stack.udp_listen("10.9.0.2", 53, lambda data, peer: answers[data])
        batch = [_udp_frame(b"text", 1001), _udp_frame(b"array", 1002), _udp_frame(b"fine", 1003)]
        stack._on_frames(batch, b"\x01" * 3)
        assert [f[42:] for f in netif.sent] == [b"array!", b"fine!"]
        assert stack.stats()["udp_handler_errors"] == 1
        assert "internal_errors" not in stack.stats()
        await stack.close()

    asyncio.run(main())
