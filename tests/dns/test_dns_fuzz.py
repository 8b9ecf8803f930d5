"""Malformed packets into the engine: no exception escapes, none is even caught internally.

``Server.handle_udp`` has a last-resort ``except`` that answers SERVFAIL and counts an
internal error; these tests require that counter to stay at zero, so a parser bug that
raises shows up here instead of hiding behind the safety net.
"""

from __future__ import annotations

import os

import dns.message
import dns.rcode
from dnstest_util import make_server
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SERVER = make_server(axfr_allow=("127.0.0.0/8",))
SEEDS = [
    dns.message.make_query(name, rdtype, use_edns=edns, payload=payload).to_wire()
    for name, rdtype, edns, payload in [
        ("www.example.org", "A", 0, 1232), ("example.org", "MX", False, 512),
        ("a.apps.example.org", "TXT", 0, 4096), ("lab.example.org", "DS", 0, 512),
        ("example.org", "AXFR", False, 512), ("example.org", "IXFR", 0, 512),
        ("nope.example.org", "ANY", 1, 1232), ("shop.example.org", "AAAA", 0, 100),
    ]
]
# DNS_FUZZ_EXAMPLES=5000 for a longer run than CI's.
FUZZ = settings(max_examples=int(os.environ.get("DNS_FUZZ_EXAMPLES", "400")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _check(payload: bytes) -> None:
    """Every datagram is answered (a well-formed response with its ID) or dropped, and a
    drop is counted and only for what cannot be answered: fewer than 12 bytes, or QR set."""
    dropped = SERVER.stats.dropped
    reply = SERVER.handle_udp(payload, ("127.0.0.1", 5353))
    assert SERVER.stats.internal_errors == 0
    if reply is not None:
        assert reply[:2] == payload[:2]
        assert reply[2] & 0x80  # always a response
        dns.message.from_wire(reply, ignore_trailing=False)  # and a well-formed one
        assert SERVER.stats.dropped == dropped
    else:
        assert SERVER.stats.dropped == dropped + 1, "dropped without counting it"
        assert len(payload) < 12 or payload[2] & 0x80, "a query went unanswered"
    dropped = SERVER.stats.dropped
    replies = SERVER.handle_tcp(payload, ("127.0.0.1", 5353))
    for out in replies:
        assert out[:2] == payload[:2] and out[2] & 0x80
    assert bool(replies) == (SERVER.stats.dropped == dropped)
    assert SERVER.stats.internal_errors == 0


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes(payload: bytes) -> None:
    _check(payload)


@FUZZ
@given(st.sampled_from(SEEDS), st.lists(st.tuples(st.integers(0, 700), st.integers(0, 255)),
                                        max_size=8), st.integers(0, 700))
def test_mutated_queries(seed: bytes, flips: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(seed)
    for pos, value in flips:
        if pos < len(data):
            data[pos] = value
    _check(bytes(data[: max(cut, 12)]))


@FUZZ
@given(st.sampled_from(SEEDS), st.binary(max_size=64), st.integers(0, 65535))
def test_appended_records_and_counts(seed: bytes, tail: bytes, arcount: int) -> None:
    data = seed[:10] + arcount.to_bytes(2, "big") + seed[12:] + tail
    _check(data)


@FUZZ
@given(st.lists(st.binary(max_size=80), max_size=6))
def test_tcp_stream_segmentation(chunks: list[bytes]) -> None:
    from fata_dns.tcp import TcpSession

    session = TcpSession(("127.0.0.1", 1), now=0.0)
    stream = b"".join(len(s).to_bytes(2, "big") + s for s in SEEDS[:3])
    for chunk in [*chunks, stream]:
        for framed in session.receive(chunk, 1.0, SERVER):
            assert int.from_bytes(framed[:2], "big") == len(framed) - 2
    assert SERVER.stats.internal_errors == 0


_TOKENS = ["$ORIGIN", "$TTL", "$INCLUDE", "@", "www", "*.w", "a.b.", "\\.", "\\065", "ü", "IN",
           "CH", "3600", "1h", "A", "AAAA", "NS", "CNAME", "MX", "TXT", "SOA", "SRV", "CAA",
           "TYPE999", "\\#", "0", "10", "192.0.2.1", "::1", "(", ")", '"', '"x y"', ";", "\\",
           " ", "\t", "\n", "\r\n", "x" * 70, "-1", "99999999999", ".", "..", "ns1"]


@FUZZ
@given(st.lists(st.sampled_from(_TOKENS), max_size=40), st.booleans())
def test_zone_reader_raises_only_zone_errors(tokens: list[str], with_header: bool) -> None:
    from fata_dns.errors import ZoneError
    from fata_dns.zone import load_zone_text

    head = "$ORIGIN f.test.\n$TTL 60\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\n" if with_header else ""
    text = head + " ".join(tokens)
    try:
        zone = load_zone_text("fuzz.zone", text)
    except ZoneError as exc:
        assert str(exc).startswith("fuzz.zone")
        assert "\n" not in str(exc)
        return
    server_catalog_smoke(zone)


def server_catalog_smoke(zone) -> None:
    """A zone that loads must also serve: every name answers without internal errors."""
    from fata_dns.lookup import Catalog
    from fata_dns.server import Server

    server = Server(Catalog([zone]))
    for _ in server.warm():
        pass
    assert server.stats.internal_errors == 0


WARM = make_server()
for _ in WARM.warm():
    pass
CASE_SEEDS = [
    dns.message.make_query(name, rdtype, use_edns=edns, payload=payload,
                           want_dnssec=do).to_wire()
    for name, rdtype, edns, payload, do in [
        ("WWW.example.org", "A", 0, 1232, False), ("www.example.org", "AAAA", False, 512, False),
        ("example.org", "MX", 0, 600, True), ("mail.example.org", "A", 0, 4096, False),
        ("ns1.example.org", "AAAA", 0, 100, True), ("*.apps.example.org", "TXT", False, 0, False),
    ]
]


@FUZZ
@given(st.sampled_from(CASE_SEEDS), st.lists(st.tuples(st.integers(0, 80), st.integers(0, 255)),
                                             max_size=3), st.binary(max_size=12))
def test_fast_memo_path_agrees_with_full_parse(seed: bytes, flips, tail: bytes) -> None:
    """The second memo level without parsing answers exactly as the full path, or not at all
    (the NXDOMAIN shortcut behind it: the same message, its SOA names uncompressed)."""
    WARM._answer_bytes(seed, tcp=False)  # memoises the seed's size class if not warmed
    assert WARM._memo_fast(seed) is not None
    data = bytearray(seed)
    for pos, value in flips:
        if pos < len(data):
            data[pos] = value
    for payload in (bytes(data), bytes(data) + tail):
        fast = WARM._memo_fast(payload)
        if fast is None:
            continue
        full = WARM._answer_bytes(payload, tcp=False)
        if fast != full:  # only the NXDOMAIN shortcut, whose SOA names are not compressed
            a, b = dns.message.from_wire(fast), dns.message.from_wire(full)
            assert a.rcode() == b.rcode() == dns.rcode.NXDOMAIN
            assert (a.id, a.flags, a.question, a.answer, a.authority, a.additional) == \
                (b.id, b.flags, b.question, b.answer, b.authority, b.additional)
            assert [rr.ttl for rr in a.authority] == [rr.ttl for rr in b.authority]
            assert (a.edns, a.ednsflags, a.payload) == (b.edns, b.ednsflags, b.payload)
