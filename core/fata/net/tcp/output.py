"""TCP segments onto the IP layer: headers, checksums, and what the link's device may finish.

The engine queues ``(src, dst, segment, mss)`` in its ``outbox``; this puts each on the link
it leaves by (``fata.net.ip.IpLayer``).  With checksum offload the TCP checksum is left
partial for the device (``csum_start``/``csum_offset``) and, with TSO, a segment larger than
the MSS goes down whole for the device to cut (``gso_size``); without offloads the checksum
is computed here, and a segment too big for the link is fragmented by the IP layer.
"""

from __future__ import annotations

from fata.net import checksum, ipv4, tcp_wire
from fata.net.ip import IpLayer


def transmit(ip: IpLayer, src: bytes, dst: bytes, seg: tcp_wire.Segment, mss: int,
             now: float) -> None:
    """Send one segment from ``src`` to ``dst`` (DF set, as path MTU discovery wants)."""
    link = ip.egress(dst)
    if link is None:
        ip.counters["ipv4_no_route"] = ip.counters.get("ipv4_no_route", 0) + 1
        return
    payload = seg.payload
    plen = len(payload)
    if link.csum_offload:
        head = tcp_wire.header(seg, None)
        tcp_len = len(head) + plen
        psum = checksum.pseudo_header_ipv4(src, dst, 6, tcp_len)
        head = head[:16] + psum.to_bytes(2, "big") + head[18:]
        gso = mss if plen > mss and link.tso else 0
        iph = ipv4.header(src, dst, 6, tcp_len, ip.next_ident(), df=True)
        ip.link_send(dst, [iph + head, payload], now, csum_start=34, csum_offset=16,
                     gso_size=gso)
        return
    head = tcp_wire.header(seg, 0)  # sized first: options decide the length
    tcp_len = len(head) + plen
    head = tcp_wire.header(seg, checksum.pseudo_header_ipv4(src, dst, 6, tcp_len))
    segment = head + bytes(payload) if plen else head
    if ipv4.HEADER_LEN + tcp_len <= link.mtu:
        iph = ipv4.header(src, dst, 6, tcp_len, ip.next_ident(), df=True)
        ip.link_send(dst, [iph, segment], now)
    else:
        ip.send(src, dst, 6, segment, now)
