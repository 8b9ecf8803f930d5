"""The datagram fast path: a batch of frames in, the answers to its plain UDP requests out.

Request/response appliances (DNS) live on this path, so it avoids the general path's
per-layer objects: one ``struct`` unpack reads the Ethernet, IPv4 and UDP headers of a
frame, the reply cache or the endpoint's handler gives the answer, and one pack writes the
reply's IP and UDP headers from per-peer precomputed partial sums (the UDP checksum left to
the device when it can finish it).  It serves only what the general path would answer the
same way: unicast IPv4 without options or fragments, to the port's own address, a bound
port, checksums right, a peer whose next hop is cached.  Everything else is handed back, in
order, for the general path (``fata.net.ip``), which also does the counting.

It is a function of its inputs, in the engine convention: frames and ``now`` in, actions
out (replies to send, frames for the general path, replies that need the general send path,
handler failures); the only code it runs besides its own is the endpoints' handlers.  A
property test (``tests/net/test_udp_fast.py``) holds its replies byte-equal to the general
path's.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fata.devices import DatagramHandler, call_handler
from fata.net import checksum

# Ethernet (addresses skipped) + option-less IPv4 + UDP headers:
# (ethertype, version/IHL/TOS) (total length) (ident) (fragment, TTL/protocol) (checksum)
# (src) (dst) (sport) (dport) (UDP length) (UDP checksum); 32-bit fields are summed whole,
# as 2**16 == 1 (mod 0xFFFF) makes that the sum of their two 16-bit words
_UDP_IN = struct.Struct("!12xIHHIHIIHHHH")
# 0x4500, total length, ident, 0x4011 (no fragment, TTL 64, UDP), checksum, addresses,
# ports, UDP length, UDP checksum
_UDP_OUT = struct.Struct("!HHHIH8sHHHH")
_M = 0xFFFF
MAX_NAMES = 4096

REPLIES = 0  # (REPLIES, [pieces, ...]): send, in order, in one call
GENERAL = 1  # (GENERAL, frame, vouched): the general path's
SLOW = 2  # (SLOW, src, sport, dst, dport, reply): a reply with no cached hop or too big
FAILED = 3  # (FAILED, endpoint, exception): its handler raised or returned a wrong type
#             (endpoint None: the fast path itself failed on that frame, a bug)

Route = tuple[bytes, float, int, bytes, int]
"""What replies to one on-link peer reuse: Ethernet header, valid-until (its ARP entry's
expiry), the reply IP header's partial sum, the address pair, the pseudo-header's sum."""


class Endpoint:
    """What the fast path needs of a bound port: the handler and the reply cache's view."""

    handler: DatagramHandler
    memo: tuple[dict[bytes, bytes], int, int, tuple[tuple[int, int], ...] | None] | None
    """(entries, prefix, payload offset, the IPv4 sources it may answer as (network, mask)
    pairs, None: all)"""


@dataclass(slots=True)
class FastPath:
    """One port's fast-path state; the stack owns and updates it.

    ``endpoints`` maps ``(ip << 16) | port`` (and ``port`` alone for the wildcard address)
    to the endpoint; ``names`` caches peers' addresses; ``routes`` the on-link peers'
    reply headers (filled by the stack once ARP knows a peer); ``ours`` is the port's
    address, or None when the fast path must stand aside (no address, hooks installed);
    ``learn`` looks a peer's route up where the stack keeps what ARP learnt."""

    endpoints: dict[int, Any]
    names: dict[int, ipaddress.IPv4Address]
    routes: dict[int, Route] = field(default_factory=dict)
    ours: int | None = None
    room: int = 1472  # the largest reply payload that fits one frame (MTU - 28)
    offload: bool = False  # the device finishes UDP checksums
    ident: int = 0  # the IP identification of the last reply
    learn: Callable[[int], Route | None] | None = None  # a peer's route, when ARP knows it


def answer(frames: Sequence[bytes], trusted: bytes, fp: FastPath, now: float) -> list[tuple]:
    """The actions for a batch of received frames (``trusted[i]``: the device vouched for
    frame i's checksums), in the order the frames came."""
    actions: list[tuple] = []
    out: list[tuple[bytes, ...]] = []
    unpack = _UDP_IN.unpack_from
    pack = _UDP_OUT.pack
    ours = fp.ours
    keys = fp.endpoints
    names = fp.names
    routes = fp.routes
    room = fp.room
    offload = fp.offload
    for frame, vouched in zip(frames, trusted, strict=True):
        try:
            if ours is not None and len(frame) >= 42 and frame[23] == 17:
                (ew, total, ident, frag_proto, csum, src, dst, sport, dport, ulen,
                 ucsum) = unpack(frame)
                ep = keys.get((dst << 16) | dport) or keys.get(dport)
                if ep is not None and ew >> 8 == 0x080045 and frag_proto & 0x3FFF00FF == 17 and \
                        dst == ours and 8 <= ulen <= total - 20 and total + 14 <= len(frame) and \
                        not (ew + total + ident + frag_proto + csum + src + dst - 0x0800) % _M and \
                        not (ucsum and not vouched and (src + dst + 17 + ulen + int.from_bytes(
                            frame[34:34 + ulen], "big") * (256 if ulen & 1 else 1)) % _M):
                    memo = ep.memo
                    tail = None if memo is None or (memo[3] is not None and not any(
                        src & mask == net for net, mask in memo[3])) else memo[0].get(
                        frame[memo[2]:34 + ulen])
                    if tail is not None:
                        reply = frame[42:memo[2]] + tail
                    else:
                        peer_ip = names.get(src)
                        if peer_ip is None:
                            if len(names) > MAX_NAMES:
                                names.clear()
                            peer_ip = names[src] = ipaddress.IPv4Address(src)
                        try:
                            reply = call_handler(ep.handler, frame[42:34 + ulen],
                                                 (peer_ip, sport))
                            if reply is None:
                                continue
                        except Exception as exc:  # one bad datagram must not stop the port
                            actions.append((FAILED, ep, exc))
                            continue
                    route = routes.get(src)
                    if (route is None or route[1] < now) and fp.learn is not None:
                        route = fp.learn(src)
                    rlen = len(reply)
                    if route is None or rlen > room or route[1] < now:
                        if out:
                            actions.append((REPLIES, out))
                            out = []
                        actions.append((SLOW, dst, dport, src, sport, reply))
                        continue
                    head, _until, ip_sum, addresses, udp_sum = route
                    ulen = 8 + rlen
                    ident = fp.ident = (fp.ident + 1) & 0xFFFF
                    out.append((head, pack(
                        0x4500, 20 + ulen, ident, 0x4011, _M - (ip_sum + ulen + ident) % _M,
                        addresses, dport, sport, ulen, (udp_sum + ulen) % _M if offload else
                        checksum.finish(udp_sum + ulen + dport + sport + ulen +
                                        checksum.partial(reply))), reply))
                    continue
        except Exception as exc:  # a bug here must not lose the rest of the batch
            actions.append((FAILED, None, exc))
            continue
        if out:
            actions.append((REPLIES, out))
            out = []
        actions.append((GENERAL, frame, vouched))
    if out:
        actions.append((REPLIES, out))
    return actions


def route_for(peer: int, ours: bytes, eth_header: bytes, until: float) -> Route:
    """The reply headers' precomputed parts for on-link ``peer`` (an integer address),
    from our address ``ours``: valid until ``until`` (the peer's ARP entry's expiry)."""
    mine = int.from_bytes(ours, "big")
    return (eth_header, until,
            (0x4500 + 0x4011 + 20 + mine + peer) % _M,  # + total length + ident per datagram
            ours + peer.to_bytes(4, "big"),
            (mine + peer + 17) % _M)  # + UDP length per datagram
