"""Bounded parsing (issue 12): the work to parse a message is bounded by its size.

One legal 64 KB message of owner names that each hop through a chain of thousands of
backward compression pointers used to cost tens of millions of steps (seconds of CPU, with
every other query waiting).  Now a name follows at most ``MAX_HOPS`` pointers, a query
decompresses only its question and OPT owner (other owners are walked in place, never
followed), and a per-message ``Budget`` caps the rest.  The tests count the parser's steps
(``Budget.steps``), not the time, except against the running appliance, where what matters
is that ordinary queries keep being answered while the attack is sent.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import dns.tsigkeyring
import pytest
from dnstest_util import EXAMPLE_ZONE, RunningAppliance, query, recv_exact
from fata_dns import query as q_mod
from fata_dns import server as server_mod
from fata_dns.names import MAX_HOPS, STEPS_PER_OCTET, Budget, read_name, skip_name
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

NAME_STEPS = MAX_HOPS + 128  # one name: at most 127 pointers, 127 labels and the root
_HEADER = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHIH")


def natural_bound(msg: bytes) -> int:
    """The steps a query parse may take with no budget: owners walked in place cost at most
    one step per octet, and at most three names are decompressed (question, two OPTs)."""
    return len(msg) + 3 * NAME_STEPS


def reference_read_name(msg: bytes, offset: int) -> tuple[bytes, int, int]:
    """The decompression read_name did before the bounds: (name, end, pointers followed)."""
    out = bytearray()
    end = -1
    limit = offset
    hops = 0
    while True:
        if offset >= len(msg):
            raise ValueError("past the end")
        length = msg[offset]
        if length == 0:
            out.append(0)
            offset += 1
            break
        if length & 0xC0 == 0xC0:
            if offset + 1 >= len(msg):
                raise ValueError("truncated pointer")
            target = ((length & 0x3F) << 8) | msg[offset + 1]
            if end < 0:
                end = offset + 2
            if target >= limit:
                raise ValueError("not backwards")
            limit = offset = target
            hops += 1
            continue
        if length & 0xC0:
            raise ValueError("label type")
        if offset + 1 + length > len(msg):
            raise ValueError("label past the end")
        out += msg[offset : offset + 1 + length]
        offset += 1 + length
        if len(out) > 254:
            raise ValueError("too long")
    return bytes(out), (end if end >= 0 else offset), hops


# -- the crafted attack -------------------------------------------------------------------

def chain(start: int, links: int) -> tuple[bytes, int]:
    """A root label at ``start`` and ``links`` pointers after it, each pointing at the one
    before; returns the bytes and the offset of the last pointer (the chain's far end)."""
    out = bytearray(b"\x00")
    for i in range(links):
        out += struct.pack("!H", 0xC000 | (start if i == 0 else start + 1 + 2 * (i - 1)))
    return bytes(out), start + 1 + 2 * (links - 1)


def attack_message(section: str = "ar", qname: bytes = b"\x03www\x07example\x03org\x00",
                   size: int = 65535, opt_owner: bool = False) -> bytes:
    """A legal query of ``size`` octets: a TXT record whose rdata is a backward pointer
    chain as long as pointers can reach (16 KB), then as many records as fit in
    ``section`` ("an", "ns" or "ar") whose owners point at the chain's far end.  With
    ``opt_owner`` the last record is an OPT whose owner is such a pointer."""
    question = qname + b"\x00\x01\x00\x01"
    start = 12 + len(question) + 11
    links = min((0x3FFF - start) // 2, max((size - start) // 4, 1))
    body, last = chain(start, links)
    first = b"\x00" + _RR.pack(16, 1, 0, len(body)) + body
    rec = struct.pack("!H", 0xC000 | last) + _RR.pack(16, 1, 0, 0)
    opt = struct.pack("!H", 0xC000 | last) + _RR.pack(41, 1232, 0, 0) if opt_owner else b""
    n = (size - 12 - len(question) - len(first) - len(opt)) // len(rec)
    an, ns, ar = {"an": (1 + n, 0, 0), "ns": (0, 1 + n, 0), "ar": (0, 0, 1 + n)}[section]
    if opt:
        ar += 1
    return _HEADER.pack(0x1234, 0, 1, an, ns, ar) + question + first + rec * n + opt


def old_cost(msg: bytes) -> int:
    """Pointers the old parser followed for ``msg`` (every owner name decompressed)."""
    _, _, _, an, ns, ar = _HEADER.unpack_from(msg, 0)
    offset = 12
    _, offset, _ = reference_read_name(msg, offset)
    offset += 4
    total = 0
    for _ in range(an + ns + ar):
        _, offset, hops = reference_read_name(msg, offset)
        total += hops
        offset += 10 + _RR.unpack_from(msg, offset)[3]
    return total


def test_the_attack_message_is_what_it_was() -> None:
    msg = attack_message()
    assert len(msg) > 65000
    assert old_cost(msg) > 20_000_000  # the seconds of the old parser
    parsed = q_mod.parse_query(msg, budget := Budget(10**9))
    assert parsed.qname == b"\x03www\x07example\x03org\x00"
    assert budget.steps <= natural_bound(msg)


@pytest.mark.parametrize("section", ["an", "ns", "ar"])
@pytest.mark.parametrize("opt_owner", [False, True])
def test_engine_answers_the_attack_within_a_step_bound(server, monkeypatch, section,
                                                       opt_owner) -> None:
    budgets: list[Budget] = []
    real = q_mod.parse_query

    def counted(msg: bytes, budget: Budget | None = None):
        budgets.append(Budget(10**9))
        return real(msg, budgets[-1])

    monkeypatch.setattr(server_mod, "parse_query", counted)
    msg = attack_message(section, opt_owner=opt_owner)
    replies = server.handle_tcp(msg, ("192.0.2.9", 5353))
    assert len(replies) == 1
    reply = dns.message.from_wire(replies[0])
    assert reply.id == 0x1234
    if opt_owner:  # the OPT owner hops through 8,000 pointers: malformed
        assert reply.rcode() == dns.rcode.FORMERR
    else:  # legal, if odd: the right answer
        assert reply.rcode() == dns.rcode.NOERROR
        assert reply.answer and "192.0.2." in reply.answer[0].to_text()
    assert len(budgets) == 1
    assert budgets[0].steps <= natural_bound(msg)
    # and the default budget, which the server uses, gives the same answer
    monkeypatch.setattr(server_mod, "parse_query", real)
    assert server.handle_tcp(msg, ("192.0.2.9", 5353)) == replies


def test_more_than_max_hops_is_formerr_and_up_to_it_parses() -> None:
    question = b"\x00\x00\x01\x00\x01"
    start = 12 + len(question) + 11
    for links, ok in ((MAX_HOPS - 1, True), (MAX_HOPS, False)):
        body, last = chain(start, links)  # the OPT owner: one more pointer to the far end
        msg = (_HEADER.pack(7, 0, 1, 0, 0, 2) + question + b"\x00" +
               _RR.pack(16, 1, 0, len(body)) + body +
               struct.pack("!H", 0xC000 | last) + _RR.pack(41, 1232, 0, 0))
        if ok:
            assert q_mod.parse_query(msg).edns is not None
        else:
            with pytest.raises(q_mod.FormErr, match="127 compression pointers"):
                q_mod.parse_query(msg)


def test_over_budget_is_formerr() -> None:
    msg = attack_message(size=2000)
    with pytest.raises(q_mod.FormErr, match="budget"):
        q_mod.parse_query(msg, Budget(10))
    budget = Budget.for_message(msg)
    assert budget.limit == STEPS_PER_OCTET * len(msg)
    q_mod.parse_query(msg, budget)
    assert 0 < budget.steps <= budget.limit


# -- generated messages -------------------------------------------------------------------

LABEL = st.binary(min_size=1, max_size=63).map(lambda b: bytes([len(b)]) + b)
BAD_LABEL = st.sampled_from([b"\x40", b"\x80", b"\x7f", b"\x3f"])  # bad types, overlong


@st.composite
def name_at(draw, pos: int, total: int) -> bytes:
    """A name written at ``pos``: labels, then root, a pointer (backward, forward, self,
    into the header) or nothing (runs on into what follows)."""
    labels = draw(st.lists(st.one_of(LABEL, LABEL, LABEL, BAD_LABEL), max_size=6))
    out = b"".join(labels)
    here = pos + len(out)
    end = draw(st.sampled_from(["root", "root", "back", "back", "forward", "self", "header",
                                "none", "half"]))
    if end == "root":
        return out + b"\x00"
    if end == "none":
        return out
    if end == "half":
        return out + b"\xc0"
    target = {"back": lambda: draw(st.integers(0, max(here - 1, 0))),
              "forward": lambda: draw(st.integers(here, max(here, total))),
              "self": lambda: here,
              "header": lambda: draw(st.integers(0, 11))}[end]()
    return out + struct.pack("!H", 0xC000 | (target & 0x3FFF))


@st.composite
def message(draw) -> bytes:
    """A query, legal or not: names from :func:`name_at`, records of random types (OPT,
    TSIG, TXT...) with right or wrong RDLENGTHs, pointer chains in rdata, random counts,
    and a random truncation."""
    total = draw(st.integers(64, 3000))
    msg = bytearray(_HEADER.pack(draw(st.integers(0, 0xFFFF)),
                                 draw(st.sampled_from([0, 0x0100, 0x8000, 0x2800])), 1, 0, 0, 0))
    msg += draw(name_at(len(msg), total)) + b"\x00\x01\x00\x01"
    records = []
    for _ in range(draw(st.integers(0, 12))):
        section = draw(st.sampled_from([0, 1, 2, 2]))
        owner = draw(name_at(len(msg), total))
        rtype = draw(st.sampled_from([1, 16, 41, 41, 250, 2, 5]))
        if draw(st.booleans()):  # rdata: a backward pointer chain, as the attack has
            start = len(msg) + len(owner) + 10
            if start + 1 < 0x3FFF:
                rdata, _ = chain(start, draw(st.integers(1, 200)))
            else:
                rdata = b""
        else:
            rdata = draw(st.binary(max_size=40))
        rdlen = len(rdata) if draw(st.integers(0, 9)) else draw(st.integers(0, 0xFFFF))
        msg += owner + _RR.pack(rtype, draw(st.sampled_from([1, 512, 4096])),
                                draw(st.sampled_from([0, 0x8000, 0x10000])), rdlen) + rdata
        records.append(section)
        if draw(st.integers(0, 4)) == 0:  # owners pointing at the far end of what came
            far = len(msg) - 2
            msg += struct.pack("!H", 0xC000 | (far & 0x3FFF)) + _RR.pack(16, 1, 0, 0)
            records.append(section)
    counts = [records.count(s) for s in range(3)]
    if draw(st.integers(0, 5)) == 0:
        counts = [draw(st.integers(0, 0xFFFF)) for _ in range(3)]
    msg[6:12] = struct.pack("!HHH", *counts)
    if draw(st.integers(0, 4)) == 0:
        msg = msg[: draw(st.integers(0, len(msg)))]
    return bytes(msg)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message())
def test_parse_work_is_bounded_by_the_size(msg: bytes) -> None:
    budget = Budget(10**9)
    try:
        q_mod.parse_query(msg, budget)
    except (q_mod.Drop, q_mod.FormErr):
        pass
    assert budget.steps <= natural_bound(msg)
    # the default budget (what the server uses) is a typed outcome too, never more work
    budget = Budget.for_message(msg)
    try:
        q_mod.parse_query(msg, budget)
    except (q_mod.Drop, q_mod.FormErr):
        pass
    assert budget.steps <= budget.limit + NAME_STEPS


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message(), st.data())
def test_read_name_is_bounded_and_agrees_with_the_unbounded_reader(msg: bytes, data) -> None:
    if not msg:
        return
    offset = data.draw(st.integers(0, len(msg) - 1))
    budget = Budget(10**9)
    try:
        ref = reference_read_name(msg, offset)
    except ValueError:
        ref = None
    try:
        got = read_name(msg, offset, budget)
    except ValueError:
        got = None
    assert budget.steps <= NAME_STEPS
    if ref is not None and ref[2] <= MAX_HOPS:
        assert got == ref[:2]  # within the bounds, the same name as before
    elif ref is None:
        assert got is None
    else:
        assert got is None  # over MAX_HOPS
    skip = Budget(10**9)
    try:
        after = skip_name(msg, offset, skip)
    except ValueError:
        after = None
    assert skip.steps <= len(msg) - offset + 1
    if ref is not None:
        assert after == ref[1]  # the same end, without following anything


NAMES = st.lists(st.from_regex(r"[a-zA-Z0-9-]{1,20}", fullmatch=True), min_size=1,
                 max_size=5).map(lambda labels: ".".join(labels) + ".")


@settings(max_examples=150, deadline=None)
@given(NAMES, st.sampled_from(["A", "AAAA", "MX", "TXT", "SOA"]),
       st.sampled_from([None, 0, 1]), st.integers(0, 3), st.booleans())
def test_legitimate_queries_parse_as_before(name, rdtype, edns, extra, tsig) -> None:
    q = dns.message.make_query(name, rdtype, use_edns=edns if edns is not None else False)
    for i in range(extra):  # records compressed against the question by dnspython
        q.answer.append(dns.rrset.from_text(f"a{i}.{name}", 60, "IN", "A", "192.0.2.1"))
        q.additional.append(dns.rrset.from_text(name, 60, "IN", "CNAME", f"x.{name}"))
    if tsig:
        q.use_tsig(dns.tsigkeyring.from_text({"key.": "c2VjcmV0c2VjcmV0"}))
    wire = q.to_wire()
    budget = Budget.for_message(wire)
    if edns == 1:
        parsed = q_mod.parse_query(wire, budget)
        assert parsed.edns is not None and parsed.edns.version == 1
    else:
        parsed = q_mod.parse_query(wire, budget)
        assert (parsed.edns is not None) == (edns is not None)
    assert parsed.qname.lower() == dns.message.from_wire(
        wire, keyring=False).question[0].name.to_wire().lower()
    assert budget.steps <= len(wire)


# -- the running appliance ----------------------------------------------------------------

def test_appliance_keeps_answering_during_the_attack(tmp_path: Path) -> None:
    app = RunningAppliance(["--zone", str(EXAMPLE_ZONE)], tmp_path)
    try:
        app.wait()
        msgs = [attack_message(section) for section in ("ar", "an", "ns")] * 4
        done = threading.Event()
        attack_replies: list[dns.message.Message] = []
        errors: list[BaseException] = []

        def attack() -> None:
            try:
                with socket.create_connection((app.host, app.port), timeout=30) as s:
                    s.sendall(b"".join(struct.pack("!H", len(m)) + m for m in msgs))
                    for _ in msgs:
                        head = recv_exact(s, 2)
                        body = recv_exact(s, struct.unpack("!H", head)[0])
                        attack_replies.append(dns.message.from_wire(body))
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)
            finally:
                done.set()

        worker = threading.Thread(target=attack, daemon=True)
        worker.start()
        times = []
        while not done.is_set() or len(times) < 5:
            start = time.monotonic()
            reply = query(app.port, "www.example.org", tcp=len(times) % 2 == 1, timeout=1.0)
            times.append(time.monotonic() - start)
            assert reply.rcode() == dns.rcode.NOERROR and reply.answer
        worker.join(30)
        assert not errors, errors
        assert len(attack_replies) == len(msgs)
        assert all(r.rcode() == dns.rcode.NOERROR and r.id == 0x1234 for r in attack_replies)
        assert max(times) < 1.0, times
    finally:
        app.stop()
