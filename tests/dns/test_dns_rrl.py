"""Response rate limiting, sans-IO, on a virtual clock: rates per client prefix and answer
class, slip, the window of debt, the table bound, and the truncated slip answer."""

from __future__ import annotations

import ipaddress

import dns.flags
import dns.message
from fata_dns.rrl import ANSWER, NXDOMAIN, ResponseRateLimiter, RrlConfig, Verdict, truncated

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
