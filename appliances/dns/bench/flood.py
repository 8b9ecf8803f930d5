"""A spoofed-source query flood, as a reflection attack looks to the server it uses.

A reflection attack sends queries whose source address is the victim's, for a name with a
large answer; the server's replies then land on the victim, many times the bytes the attacker
sent.  Here the "victims" are addresses of the loopback network (all of 127.0.0.0/8 is local
on Linux, so a socket can be bound to any of them and the replies come back to it): ``SOURCES``
addresses spread over ``PREFIXES`` /24 networks, none of them 127.0.0.1 (the ordinary client
of the benchmark). The generator sends at a fixed rate, round-robin over the sources, and
counts what the server sends back: full answers, truncated (slip) answers, others, and their
bytes. What leaves the server towards the victims is what an RRL implementation bounds.

Run as a program (the harness starts it pinned to the load core, beside dnsperf)::

    python flood.py --port PORT --qname big.reflect.fata.test. --rate 20000 --duration 5

It prints one JSON object: ``sent``, ``sent_bytes``, ``full``, ``slipped``, ``other``,
``received_bytes``, ``send_seconds`` (the time over which ``sent`` went out) and
``rate_achieved``. Only loopback addresses are ever used.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import selectors
import socket
import struct
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

PREFIXES = 16
"""Victim /24 networks (RRL accounts per /24, so this many buckets per answer)."""
SOURCES = 256
"""Victim addresses, spread evenly over the prefixes."""
DRAIN = 0.3
"""Seconds to keep receiving after the last query (replies still in flight)."""
MAX_BURST = 2000
"""Queries sent at most between two looks at the receive side."""


def victim_addresses(prefixes: int = PREFIXES, sources: int = SOURCES) -> list[str]:
    """``sources`` addresses in 127.200.P.H, P < ``prefixes``: never 127.0.0.1, and every
    prefix a separate /24 network."""
    if not 1 <= prefixes <= 256 or not prefixes <= sources <= prefixes * 254:
        raise ValueError(f"cannot spread {sources} sources over {prefixes} /24 prefixes")
    per, extra = divmod(sources, prefixes)
    out = []
    for p in range(prefixes):
        out.extend(f"127.200.{p}.{h}" for h in range(1, per + (p < extra) + 1))
    return out


def query_wire(qname: str, qtype: int = 16, edns_payload: int = 4096) -> bytes:
    """A query for ``qname`` (TXT by default) with EDNS0 advertising ``edns_payload`` bytes,
    as amplification attacks send it (the large answer must fit one datagram); ID 0."""
    labels = [label for label in qname.rstrip(".").split(".") if label]
    name = b"".join(bytes([len(lab)]) + lab.encode("ascii") for lab in labels) + b"\x00"
    header = struct.pack("!HHHHHH", 0, 0, 1, 0, 0, 1)  # RD clear: an authoritative query
    opt = b"\x00" + struct.pack("!HHIH", 41, edns_payload, 0, 0)
    return header + name + struct.pack("!HH", qtype, 1) + opt


@dataclass
class FloodCounts:
    """What one flood sent and what came back."""

    sent: int = 0
    sent_bytes: int = 0
    full: int = 0
    """Replies without TC and with at least one answer record: the amplified ones."""
    slipped: int = 0
    """Truncated replies (TC set): RRL's slip, which a real client would retry over TCP."""
    other: int = 0
    """Any other reply (errors, empty answers)."""
    received_bytes: int = 0
    send_seconds: float = 0.0

    @property
    def replies(self) -> int:
        return self.full + self.slipped + self.other

    @property
    def rate_achieved(self) -> float:
        return self.sent / self.send_seconds if self.send_seconds > 0 else 0.0

    @classmethod
    def from_json(cls, text: str) -> FloodCounts:
        """The counts a flood program printed; ValueError if ``text`` is not that."""
        try:
            data = json.loads(text)
            return cls(**{name: data[name] for name in cls.__dataclass_fields__})
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise ValueError(f"not a flood report: {text[:200]!r}") from exc

    def per_second(self, count: int) -> float:
        return count / self.send_seconds if self.send_seconds > 0 else 0.0

    @property
    def amplification(self) -> float | None:
        """Bytes that came back per byte sent (DNS payloads): the attacker's gain."""
        return self.received_bytes / self.sent_bytes if self.sent_bytes else None

    def count(self, reply: bytes) -> None:
        """Classify one reply by its header (never raises: short replies are ``other``)."""
        self.received_bytes += len(reply)
        if len(reply) < 12:
            self.other += 1
        elif reply[2] & 0x02:
            self.slipped += 1
        elif reply[6:8] != b"\x00\x00":
            self.full += 1
        else:
            self.other += 1


def run_flood(target: tuple[str, int], query: bytes, rate: float, duration: float,
              sources: Sequence[str],
              clock: Callable[[], float] = time.monotonic) -> FloodCounts:
    """Send ``query`` (with a fresh ID each time) to ``target`` at ``rate`` per second for
    ``duration`` seconds, round-robin over sockets bound to ``sources``, counting replies
    until :data:`DRAIN` seconds after the last one went out."""
    counts = FloodCounts()
    selector = selectors.DefaultSelector()
    socks = []
    try:
        for address in sources:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            s.bind((address, 0))
            s.setblocking(False)
            selector.register(s, selectors.EVENT_READ)
            socks.append(s)
        body = bytearray(query)
        start = clock()
        end = start + duration
        next_sock = 0
        while True:
            now = clock()
            if now >= end:
                break
            due = min(int((now - start) * rate) - counts.sent, MAX_BURST)
            for _ in range(max(due, 0)):
                struct.pack_into("!H", body, 0, counts.sent & 0xFFFF)
                try:
                    socks[next_sock].sendto(body, target)
                except (BlockingIOError, ConnectionRefusedError):
                    pass  # a full send buffer drops it, as the network would; still counted
                counts.sent += 1
                counts.sent_bytes += len(body)
                next_sock = (next_sock + 1) % len(socks)
            _receive(selector, counts, timeout=0.0005)
        counts.send_seconds = clock() - start
        drain_end = clock() + DRAIN
        while (left := drain_end - clock()) > 0:
            _receive(selector, counts, timeout=left)
    finally:
        selector.close()
        for s in socks:
            s.close()
    return counts


def _receive(selector: selectors.BaseSelector, counts: FloodCounts, timeout: float) -> None:
    for key, _ in selector.select(timeout):
        sock = key.fileobj
        assert isinstance(sock, socket.socket)
        while True:
            try:
                counts.count(sock.recv(65535))
            except (BlockingIOError, ConnectionRefusedError):
                break


def main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(description="Spoofed-source DNS flood over loopback.")
    p.add_argument("--server", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--qname", required=True)
    p.add_argument("--rate", type=float, default=20_000.0)
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--prefixes", type=int, default=PREFIXES)
    p.add_argument("--sources", type=int, default=SOURCES)
    args = p.parse_args(argv)
    if not ipaddress.ip_address(args.server).is_loopback:
        print("flood.py: the server must be a loopback address", file=sys.stderr)
        return 2
    try:
        sources = victim_addresses(args.prefixes, args.sources)
    except ValueError as exc:
        print(f"flood.py: {exc}", file=sys.stderr)
        return 2
    counts = run_flood((args.server, args.port), query_wire(args.qname), args.rate,
                       args.duration, sources)
    print(json.dumps({**asdict(counts), "rate_achieved": counts.rate_achieved}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
