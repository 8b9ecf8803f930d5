"""Response rate limiting, sans-IO, on a virtual clock: rates per client prefix and answer
class, slip, the window of debt, the table bound, and the truncated slip answer."""

from __future__ import annotations

import ipaddress
import time

import dns.flags
import dns.message
from fata_dns.rrl import (
    ANSWER,
    ERROR,
    NODATA,
    NXDOMAIN,
    ResponseRateLimiter,
    RrlConfig,
    Verdict,
    classify,
    limited,
    truncated,
)

A = ipaddress.ip_address("192.0.2.10")
A_NEIGHBOUR = ipaddress.ip_address("192.0.2.200")  # same /24
B = ipaddress.ip_address("198.51.100.7")
V6 = ipaddress.ip_address("2001:db8:0:1::5")
V6_NEIGHBOUR = ipaddress.ip_address("2001:db8:0:2::9")  # same /56
NAME = b"\x03www\x07example\x03org\x00"


def verdicts(rrl: ResponseRateLimiter, client, count: int, now: float, kind: str = ANSWER,
             name: bytes = NAME) -> list[Verdict]:
    return [rrl.check(client, kind, name, now) for _ in range(count)]


def test_a_burst_over_the_rate_is_dropped_with_every_second_one_slipped() -> None:
    rrl = ResponseRateLimiter(RrlConfig(rate=5, slip=2))
    out = verdicts(rrl, A, 11, now=100.0)
    assert out[:5] == [Verdict.SEND] * 5
    assert out[5:] == [Verdict.DROP, Verdict.SLIP] * 3
    assert (rrl.counters.sent, rrl.counters.dropped, rrl.counters.slipped) == (5, 3, 3)


def test_the_bucket_refills_at_the_rate_and_debt_lasts_the_window() -> None:
    rrl = ResponseRateLimiter(RrlConfig(rate=10, window=2, slip=0))
    assert verdicts(rrl, A, 10, now=0.0) == [Verdict.SEND] * 10
    assert verdicts(rrl, A, 1000, now=0.0).count(Verdict.SEND) == 0  # a flood: all dropped
    # debt is capped at window * rate = 20: after 2 s more than that, credit again
    assert rrl.check(A, ANSWER, NAME, now=2.0) == Verdict.DROP
    assert rrl.check(A, ANSWER, NAME, now=4.2) == Verdict.SEND


def test_clients_prefixes_classes_and_names_are_accounted_apart() -> None:
    rrl = ResponseRateLimiter(RrlConfig(rate=1, slip=0))
    assert rrl.check(A, ANSWER, NAME, 0.0) == Verdict.SEND
    assert rrl.check(A_NEIGHBOUR, ANSWER, NAME, 0.0) == Verdict.DROP  # same /24
    assert rrl.check(B, ANSWER, NAME, 0.0) == Verdict.SEND
    assert rrl.check(A, NXDOMAIN, NAME, 0.0) == Verdict.SEND
    assert rrl.check(A, ANSWER, b"\x05other\x00", 0.0) == Verdict.SEND
    assert rrl.check(V6, ANSWER, NAME, 0.0) == Verdict.SEND
    assert rrl.check(V6_NEIGHBOUR, ANSWER, NAME, 0.0) == Verdict.DROP  # same /56


def test_per_class_rates() -> None:
    rrl = ResponseRateLimiter(RrlConfig(rate=10, nxdomain_rate=2, slip=0))
    assert verdicts(rrl, A, 3, 0.0, kind=NXDOMAIN).count(Verdict.SEND) == 2
    assert verdicts(rrl, A, 11, 0.0).count(Verdict.SEND) == 10


def test_the_table_is_bounded_and_forgets_the_stalest() -> None:
    rrl = ResponseRateLimiter(RrlConfig(rate=1, max_entries=100, slip=0))
    for i in range(1000):
        rrl.check(ipaddress.ip_address(f"10.{i // 256}.{i % 256}.1"), ANSWER, NAME, 0.0)
    assert len(rrl._buckets) == 100 and rrl.counters.evicted == 900


def test_the_slip_answer_is_an_empty_truncated_response_to_the_question() -> None:
    query = dns.message.make_query("www.example.org", "A", want_dnssec=False)
    query.flags |= dns.flags.CD
    reply = dns.message.from_wire(truncated(query.to_wire()))
    assert reply.id == query.id and reply.question == query.question
    assert reply.flags & dns.flags.QR and reply.flags & dns.flags.TC
    assert reply.flags & dns.flags.AA and reply.flags & dns.flags.RD
    assert reply.flags & dns.flags.CD
    assert not reply.answer and not reply.authority and not reply.additional
    assert truncated(b"\x00" * 11) is None
    assert truncated(b"\x12\x34" + b"\x00" * 10 + b"\x03ww") is None  # a name cut short


def _reply(server, name: str, rdtype: str = "A") -> bytes:
    query = dns.message.make_query(name, rdtype, use_edns=0)
    query.flags &= ~dns.flags.RD
    reply = server.handle_udp(query.to_wire(), ("127.0.0.1", 5000))
    assert reply is not None
    return reply


def test_answers_are_classified_as_bind_accounts_them() -> None:
    from dnstest_util import make_server
    from fata_dns.names import from_text

    server = make_server()

    def zone_of(qname: bytes) -> bytes:
        zone = server.catalog.zone_for(qname)
        return zone.origin if zone else b""

    www = from_text("www.example.org.", None)
    assert classify(_reply(server, "WWW.example.org"), zone_of) == (ANSWER, www + b"\x00\x01")
    assert classify(_reply(server, "www.example.org", "TXT"), zone_of) == (NODATA, www)
    assert classify(_reply(server, "nope.example.org"), zone_of) == \
        (NXDOMAIN, from_text("example.org.", None))
    assert classify(_reply(server, "x.example.com"), zone_of) == (ERROR, b"")  # REFUSED
    assert classify(b"\x00" * 5, zone_of) == (ERROR, b"")


def test_limited_handler_sends_drops_and_slips() -> None:
    from dnstest_util import make_server

    server = make_server()
    clock = [0.0]
    rrl = ResponseRateLimiter(RrlConfig(rate=2, slip=2))
    handler = limited(server.handle_udp, rrl, lambda q: b"", lambda: clock[0])
    query = dns.message.make_query("www.example.org", "A").to_wire()
    peer = (ipaddress.ip_address("203.0.113.9"), 5353)
    out = [handler(query, peer) for _ in range(6)]
    assert [dns.message.from_wire(r).answer != [] for r in out[:2]] == [True, True]
    assert out[2] is None and out[4] is None
    assert dns.message.from_wire(out[3]).flags & dns.flags.TC
    clock[0] = 10.0  # the bucket refilled
    assert dns.message.from_wire(handler(query, peer)).answer


def test_exempt_clients_are_answered_in_full_and_not_accounted() -> None:
    from dnstest_util import make_server

    server = make_server()
    exempt = (ipaddress.ip_network("203.0.113.0/28"), ipaddress.ip_network("2001:db8::/32"))
    rrl = ResponseRateLimiter(RrlConfig(rate=1, slip=2, exempt=exempt))
    handler = limited(server.handle_udp, rrl, lambda q: b"", lambda: 0.0)
    query = dns.message.make_query("www.example.org", "A").to_wire()
    for peer in ((ipaddress.ip_address("203.0.113.9"), 53), (V6, 53)):
        replies = [handler(query, peer) for _ in range(20)]
        assert all(r is not None and dns.message.from_wire(r).answer for r in replies)
    assert rrl.counters == type(rrl.counters)()  # nothing accounted
    outside = (ipaddress.ip_address("203.0.113.17"), 53)  # same /24, outside the /28
    assert [handler(query, outside) is not None for _ in range(3)] == [True, False, True]
    assert rrl.counters.sent == 1 and rrl.counters.dropped == 1 and rrl.counters.slipped == 1


def test_a_bad_exempt_network_is_named() -> None:
    import pytest
    from fata_dns.unikernel import networks

    assert networks("--rrl-exempt", ["127.0.0.1", "10.0.0.0/8"]) == (
        ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.0.0.0/8"))
    with pytest.raises(ValueError, match="--rrl-exempt: 'nowhere' is not an address or CIDR"):
        networks("--rrl-exempt", ["127.0.0.1", "nowhere"])


def _burst(appliance, source: str, query, count: int, probe):
    """Send ``count`` copies of ``query`` from ``source`` to the running appliance, then
    ``probe`` (of a kind never limited); return the replies before the probe's, and its."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((source, 0))
        s.settimeout(5)
        for i in range(count):
            query.id = i
            s.sendto(query.to_wire(), (appliance.host, appliance.port))
        s.sendto(probe.to_wire(), (appliance.host, appliance.port))
        replies = []
        while True:
            reply = dns.message.from_wire(s.recv(4096))
            if reply.id == probe.id and reply.question == probe.question:
                return replies, reply
            replies.append(reply)


def test_a_flood_from_one_network_is_limited_and_other_networks_are_served(tmp_path) -> None:
    """The running appliance with ``--rrl 5``: 60 queries for one name from 127.0.0.1 get
    about 5 answers, half of the rest truncated, the others dropped; a query of another kind
    (a probe sent last, so every earlier reply has arrived when it does) and a client on
    another /24 are answered in full; the stop line counts it all."""
    import socket

    from dnstest_util import RunningAppliance

    a = RunningAppliance(["--rrl", "5", "--rrl-slip", "2"], tmp_path)
    try:
        a.wait()
        flood = dns.message.make_query("www.example.org", "A")
        probe = dns.message.make_query("example.org", "MX")
        start = time.monotonic()
        replies, reply = _burst(a, "127.0.0.1", flood, 60, probe)
        elapsed = time.monotonic() - start  # the bucket refills meanwhile
        assert reply.answer and not reply.flags & dns.flags.TC
        full = [r for r in replies if not r.flags & dns.flags.TC]
        slipped = [r for r in replies if r.flags & dns.flags.TC]
        assert all(r.answer for r in full) and not any(r.answer for r in slipped)
        assert 5 <= len(full) <= 5 + 5 * elapsed + 1
        over = 60 - len(full)
        refills = len(full) - 5  # each answer sent mid-flood restarts the slip count
        assert over // 2 - 1 - refills <= len(slipped) <= over // 2 + 1 + refills
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
            other.bind(("127.0.1.1", 0))  # another /24 of the loopback network
            other.settimeout(5)
            other.sendto(flood.to_wire(), (a.host, a.port))
            answer = dns.message.from_wire(other.recv(4096))
        assert answer.answer and not answer.flags & dns.flags.TC
    finally:
        a.stop()
    line = next(ln for ln in a.output().splitlines() if "stopping:" in ln)
    assert f"{len(slipped)} slipped" in line and f"{over - len(slipped)} dropped" in line


def test_the_running_appliance_exempts_what_rrl_exempt_names(tmp_path) -> None:
    """``--rrl 5 --rrl-exempt 127.0.0.1``: 40 queries from 127.0.0.1 are all answered in
    full; the same from 127.0.0.2 (same /24, not exempt) are limited."""

    from dnstest_util import RunningAppliance

    a = RunningAppliance(["--rrl", "5", "--rrl-slip", "0", "--rrl-exempt", "127.0.0.1"], tmp_path)
    try:
        a.wait()
        query = dns.message.make_query("www.example.org", "A")
        probe = dns.message.make_query("example.org", "MX")  # another kind: never limited
        got = {source: _burst(a, source, query, 40, probe)[0]
               for source in ("127.0.0.1", "127.0.0.2")}
        assert len(got["127.0.0.1"]) == 40 and all(r.answer for r in got["127.0.0.1"])
        assert 5 <= len(got["127.0.0.2"]) < 20
    finally:
        a.stop()
