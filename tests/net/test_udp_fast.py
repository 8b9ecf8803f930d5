"""The datagram fast path answers exactly as the general path would.

Hypothesis builds batches of frames (bound, wildcard-bound and closed ports; memoised
queries; handlers that answer, stay silent, raise or return a wrong type; bad IP and UDP
checksums, zero UDP checksums, IP options, fragments, other destinations, truncated and
lying lengths; vouched and unvouched) and the same batch goes once through
``DirectStack._on_frames`` (fast path first) and once frame by frame through the general
path (``IpLayer.frame_input``).  What the device is given, and every counter, must be the
same (IP identifications aside: each path numbers its own datagrams).
"""

from __future__ import annotations

import asyncio

from fata.devices import ReplyCache
from fata.net import checksum, ethernet, ipv4, udp
from hypothesis import given, settings
from hypothesis import strategies as st

from .test_frames import OURS, PEER, PEER_MAC, _stack

MUTATIONS = ["none", "bad_ip_csum", "bad_udp_csum", "zero_udp_csum", "ip_options", "fragment",
             "other_dst", "udp_len_short", "udp_len_long", "udp_len_longer", "truncated",
             "not_ipv4"]


def handler(data: bytes, peer: tuple) -> object:
    if data[2:] == b"cached":
        return data[:2] + b"from the memo"
    if data.startswith(b"n"):
        return None
    if data.startswith(b"x"):
        raise ValueError("bad datagram")
    if data.startswith(b"w"):
        return 42  # a wrong type: the handler's error
    if data.startswith(b"b"):
        return bytearray(data[::-1])
    return data[::-1] + f"{peer[0]}:{peer[1]}".encode()


def build(payload: bytes, sport: int, dport: int, mutation: str) -> bytes:
    dst = ipv4.addr("10.9.0.99") if mutation == "other_dst" else OURS
    pseudo = checksum.pseudo_header_ipv4(PEER, dst, udp.PROTO, udp.HEADER_LEN + len(payload))
    datagram = bytearray(udp.build(sport, dport, payload, pseudo))
    if mutation == "bad_udp_csum":
        datagram[6] ^= 0x5A
    elif mutation == "zero_udp_csum":
        datagram[6:8] = b"\0\0"
    elif mutation == "udp_len_short":
        datagram[4:6] = (len(datagram) - 1).to_bytes(2, "big")
    elif mutation in ("udp_len_long", "udp_len_longer"):
        extra = 1 if mutation == "udp_len_long" else 4
        datagram[4:6] = (len(datagram) + extra).to_bytes(2, "big")
    options = b"\x01\x01\x01\x00" if mutation == "ip_options" else b""
    header = bytearray(ipv4.header(PEER, dst, ipv4.PROTO_UDP, len(datagram) + len(options), 7,
                                   mf=mutation == "fragment"))
    if options:
        header[0] = 0x46
        header[10:12] = b"\0\0"
        header[10:12] = checksum.checksum(bytes(header) + options).to_bytes(2, "big")
    if mutation == "bad_ip_csum":
        header[10] ^= 0xFF
    ethertype = b"\x86\xdd" if mutation == "not_ipv4" else b"\x08\x00"
    frame = b"\x02\0\0\0\0\x02" + PEER_MAC + ethertype + bytes(header) + options + datagram
    return frame[:len(frame) - 3] if mutation == "truncated" else frame


def normalise(frame: bytes) -> bytes:
    """The frame with its IPv4 identification zeroed (and the header checksum redone)."""
    if frame[12:14] != ethernet.ETHERTYPE_IPV4.to_bytes(2, "big"):
        return frame
    data = bytearray(frame)
    hlen = (data[14] & 0xF) * 4
    assert checksum.verify(data[14:14 + hlen])  # what each path sent was right
    data[18:20] = b"\0\0"
    data[24:26] = b"\0\0"
    data[24:26] = checksum.checksum(data[14:14 + hlen]).to_bytes(2, "big")
    return bytes(data)


payloads = st.one_of(
    st.sampled_from([b"\0\0cached", b"\x12\x34cached", b"nothing", b"xplode", b"wrong",
                     b"bytes-like", b"", b"q"]),
    st.binary(max_size=300).map(lambda b: b"q" + b),
    st.binary(min_size=1400, max_size=1480).map(lambda b: b"q" + b))  # too big for one frame
frames = st.tuples(payloads, st.integers(1, 65535), st.sampled_from([53, 5353, 54]),
                   st.sampled_from(MUTATIONS), st.booleans())


@settings(max_examples=250, deadline=None)
@given(batch=st.lists(frames, min_size=1, max_size=10), offload=st.booleans())
def test_fast_path_answers_as_the_general_path(batch: list, offload: bool) -> None:
    async def through(fast: bool) -> tuple[list[bytes], dict[str, int]]:
        netif, stack = _stack(offload)
        cache = ReplyCache({b"cached": b"from the memo"}, prefix=2)
        await stack.udp_listen("10.9.0.2", 53, handler, reply_cache=cache)
        await stack.udp_listen("0.0.0.0", 5353, handler)
        built = [build(*spec[:4]) for spec in batch]
        trusted = bytes(int(spec[4]) for spec in batch)
        if fast:
            stack._on_frames(built, trusted)
        else:
            link = stack.ports[0].link
            for frame, vouched in zip(built, trusted, strict=True):
                stack.ip.frame_input(link, frame, bool(vouched), stack.loop.time())
        sent = [normalise(frame) for frame in netif.sent]
        stats = stack.stats()
        await stack.close()
        return sent, stats

    async def main() -> None:
        fast, general = await through(True), await through(False)
        assert fast[0] == general[0]
        assert fast[1] == general[1]

    asyncio.run(main())


def test_a_reply_cache_limited_to_sources_answers_only_them() -> None:
    """A cache limited to a network holding PEER answers it on the fast path (the handler is
    not called); limited to another network, the handler answers instead, the same bytes."""
    import ipaddress

    calls: list[bytes] = []

    def counting(data: bytes, peer: tuple) -> object:
        calls.append(data)
        return handler(data, peer)

    peer_net = ipaddress.ip_network(f"{ipaddress.IPv4Address(PEER)}/24", strict=False)

    async def through(sources) -> list[bytes]:
        netif, stack = _stack(False)
        cache = ReplyCache({b"cached": b"from the memo"}, prefix=2, sources=sources)
        await stack.udp_listen("10.9.0.2", 53, counting, reply_cache=cache)
        stack._on_frames([build(b"\x12\x34cached", 4000, 53, "none")], b"\x00")
        sent = [normalise(frame) for frame in netif.sent]
        await stack.close()
        return sent

    async def main() -> None:
        inside = await through((peer_net,))
        assert calls == []
        outside = await through((ipaddress.ip_network("192.0.2.0/24"),
                                 ipaddress.ip_network("2001:db8::/32")))
        assert calls == [b"\x12\x34cached"]
        assert inside == outside and len(inside) == 1

    asyncio.run(main())
