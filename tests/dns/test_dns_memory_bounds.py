"""Memory bounded in bytes (issue 12): a flood of distinct names that exist (wildcard
matches with long labels), and of cacheable distinct queries, keeps the memo and the reply
cache under their byte budgets; the zone's own names stay memoised; answers stay right."""

from __future__ import annotations

import random
import socket
import time
import tracemalloc
from pathlib import Path

import dns.message
import dns.rcode
import dns.rdatatype
import dns.zone
from dnstest_util import (
    EXAMPLE_ZONE,
    LAB_ZONE,
    OTHER_ZONE,
    RunningAppliance,
    query,
    rrs,
    rss_kb,
)

FLOOD = 200_000
MEMO_BYTES = 1 << 20
REPLY_BYTES = 512 << 10
TRACED = 20_000  # the first queries of the flood run under tracemalloc (slow)


def _server(memo_bytes: int, reply_cache_bytes: int):
    from fata_dns.lookup import Catalog
    from fata_dns.server import Server
    from fata_dns.zone import load_zone_text

    zones = [load_zone_text(str(EXAMPLE_ZONE), EXAMPLE_ZONE.read_text()),
             load_zone_text("lab.zone", LAB_ZONE), load_zone_text("net.zone", OTHER_ZONE)]
    return Server(Catalog(zones), memo_bytes=memo_bytes, reply_cache_bytes=reply_cache_bytes)


def _wire(name: str, qid: int, rtype: int = 1, edns: bool = False) -> bytes:
    qname = b"".join(bytes([len(lab)]) + lab for lab in name.encode().split(b".") if lab)
    opt = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00" if edns else b""
    return b"".join((qid.to_bytes(2, "big"), b"\x00\x00\x00\x01\x00\x00\x00\x00",
                     b"\x00\x01" if edns else b"\x00\x00", qname, b"\x00",
                     rtype.to_bytes(2, "big"), b"\x00\x01", opt))


def _long_name(rng: random.Random, i: int, under: str) -> str:
    """A distinct name of ~200 bytes below ``under`` (never below x.apps)."""
    head = f"{rng.getrandbits(200):050x}"
    return f"w{i}{head}.{'q' * 63}.{'z' * 61}.{under}"


def _expected(name: str, rtype: str) -> set[str]:
    """The answer section as dnspython reads the zone file: the wildcard's records with the
    question's owner, then (for the CNAME under *.docs) the target's."""
    zone = dns.zone.from_file(str(EXAMPLE_ZONE), origin="example.org.", relativize=False)
    out = set()
    for wild in ("*.apps.example.org.", "*.docs.example.org."):
        if name.endswith(wild[1:]):
            node = zone.get_node(wild)
            for rds in node.rdatasets:
                if dns.rdatatype.to_text(rds.rdtype) not in (rtype, "CNAME"):
                    continue
                for rd in rds:
                    out.add(f"{name.lower()} {rds.ttl} {dns.rdatatype.to_text(rds.rdtype)} "
                            f"{rd.to_text()}")
                if rds.rdtype == dns.rdatatype.CNAME:
                    target = zone.get_node("www.example.org.")
                    for trds in target.rdatasets:
                        if dns.rdatatype.to_text(trds.rdtype) == rtype:
                            out.update(f"www.example.org. {trds.ttl} {rtype} {rd.to_text()}"
                                       for rd in trds)
    return out


def test_engine_flood_stays_within_byte_budgets() -> None:
    srv = _server(MEMO_BYTES, REPLY_BYTES)
    for _ in srv.warm():
        pass
    warm_keys = set(srv._memo)
    assert warm_keys and srv.memo_budget.used <= MEMO_BYTES
    # The zone's own names, asked once before the flood: pinned in the reply cache.
    ordinary = [_wire("www.example.org", 7), _wire("WwW.example.ORG", 8, edns=True),
                _wire("example.org", 9, rtype=15)]
    before = [srv.handle_udp(w) for w in ordinary]
    assert all(w[2:] in srv.reply_cache.entries for w in ordinary)
    memo_entries = len(srv._memo)

    rng = random.Random(12)
    tracemalloc.start()
    start = tracemalloc.get_traced_memory()[0]
    peak_used = (0, 0)
    traced = (0, 0)
    try:
        for i in range(FLOOD):
            if i == TRACED:
                traced = tracemalloc.get_traced_memory()
                tracemalloc.stop()
            under = "apps.example.org" if i % 2 else "docs.example.org"
            name = _long_name(rng, i, under)
            wire = _wire(name, i & 0xFFFF, edns=bool(i % 3))
            for _ in range(1 if i % 10 else 2):  # some asked twice: the doorkeeper admits them
                reply = srv.handle_udp(wire)
            if i % 4999 == 0:
                msg = dns.message.from_wire(reply)
                assert msg.rcode() == dns.rcode.NOERROR
                assert rrs(msg.answer) == _expected(name + ".", "A"), name
            if i % 1000 == 0:
                peak_used = (max(peak_used[0], srv.memo_budget.used),
                             max(peak_used[1], srv.exact_budget.used))
        # Wildcard answers are never memoised per name: one entry per wildcard, shape of
        # name (here the first label's length: 1 + 1..6 digits + 50) and size class.
        assert 0 < len(srv._memo) - memo_entries <= 2 * 6 * 2
        tracemalloc.start()
        start2 = tracemalloc.get_traced_memory()[0]
        # Then distinct cacheable queries, each asked twice: random case of a zone name
        # (reply cache), names outside every zone (memo: REFUSED), no-such-name (NXDOMAIN).
        for i in range(10_000):
            case = "".join(c.upper() if rng.random() < 0.5 else c for c in "www.example.org")
            for w in (_wire(f"{case}", i, edns=True), _wire(f"n{i}.{'o' * 60}.test", i),
                      _wire(f"n{i}.{'x' * 60}.example.org", i, edns=True)):
                srv.handle_udp(w)
                srv.handle_udp(w)
            if i % 500 == 0:
                peak_used = (max(peak_used[0], srv.memo_budget.used),
                             max(peak_used[1], srv.exact_budget.used))
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The wildcard flood kept nothing (its peak: one query's garbage, a doorkeeper reset).
    assert traced[0] - start < 256 << 10 and traced[1] - start < 2 << 20, traced
    assert peak_used[0] <= MEMO_BYTES and peak_used[1] <= REPLY_BYTES, peak_used
    assert srv.memo_budget.used <= MEMO_BYTES and srv.exact_budget.used <= REPLY_BYTES
    assert srv.exact_budget.transient_bytes > 0  # the budget was really used
    # What Python allocated over the flood, and kept, is within the budgets (plus the
    # doorkeepers' reset and the last reply's garbage).
    slack = 2 << 20
    assert current - start2 <= MEMO_BYTES + REPLY_BYTES + slack, current - start2
    assert peak - start2 <= MEMO_BYTES + REPLY_BYTES + slack, peak - start2
    # The zone's own names are still memoised and still in the reply cache, same answers.
    assert warm_keys <= set(srv._memo)
    assert all(w[2:] in srv.reply_cache.entries for w in ordinary)
    assert [srv.handle_udp(w) for w in ordinary] == before
    assert srv._memo_fast(_wire("mail2.example.org", 3)) is not None  # a memo hit
    # And a wildcard answer after all that is still right, in both cases.
    for name in ("Late.Apps.example.org.", "late.docs.example.org."):
        msg = dns.message.from_wire(srv.handle_udp(_wire(name, 5)))
        assert rrs(msg.answer) == _expected(name.lower(), "A")


def test_budget_zero_and_reload_clear() -> None:
    """Budgets of 0 bytes cache nothing yet answer the same; a reload forgets the bytes."""
    srv = _server(0, 0)
    for _ in srv.warm():
        pass
    ref = _server(1 << 20, 1 << 20)
    for w in (_wire("www.example.org", 1), _wire("a.apps.example.org", 2, edns=True)):
        assert srv.handle_udp(w) == ref.handle_udp(w)
    assert not srv._memo and not srv.reply_cache.entries
    assert srv.memo_budget.used == 0 and srv.exact_budget.used == 0
    ref.load(ref.catalog)
    assert ref.memo_budget.used == 0 and ref.exact_budget.used == 0 and not ref._exact


def test_doorkeeper_and_budget_regions() -> None:
    from fata_dns.cache import Budget, Doorkeeper

    door = Doorkeeper(slots=1 << 10, window=1 << 7)
    assert not door.admit(b"a") and door.admit(b"a")
    mine = hash(b"a") & ((1 << 10) - 1)
    others = [k for k in (i.to_bytes(4, "big") for i in range(400))
              if hash(k) & ((1 << 10) - 1) != mine][:200]  # none shares b"a"'s slot
    for key in others:  # past the window: the table is reset, b"a" is forgotten
        door.admit(key)
    assert not door.admit(b"a")
    entries: dict[bytes, bytes] = {}
    budget = Budget(entries, 1000, 100, pinned_max=500)
    assert budget.add(b"p1", b"x" * 98, 100, pinned=True)
    assert budget.add(b"p2", b"x" * 98, 100, pinned=True)
    assert not budget.add(b"p3", b"x" * 398, 400, pinned=True)  # over pinned_max
    for i in range(20):
        assert budget.add(bytes([i]), b"y" * 99, 100)
        assert budget.used <= 1000 and b"p1" in entries and b"p2" in entries
    assert len(entries) < 20 and budget.pinned_bytes == 400
    assert not budget.add(b"huge", b"z" * 2000, 2000)
    budget.reset()
    assert not entries and budget.used == 0


def test_appliance_flood_keeps_rss_and_answers(tmp_path: Path) -> None:
    """A bounded flood (60,000 distinct long wildcard names, at most 20 s, to 127.0.0.1)."""
    a = RunningAppliance([], tmp_path)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        a.wait("example.org.")
        sock.connect(("127.0.0.1", a.port))
        sock.setblocking(False)
        rng = random.Random(4)
        deadline = time.monotonic() + 20
        slowest = 0.0
        sent = 0
        for i in range(60_000):
            if time.monotonic() > deadline:
                break
            under = "apps.example.org" if i % 2 else "docs.example.org"
            try:
                sock.send(_wire(_long_name(rng, i, under), i & 0xFFFF, edns=bool(i % 3)))
                sent += 1
            except BlockingIOError:
                time.sleep(0.001)
            try:
                while True:
                    sock.recv(4096)
            except (BlockingIOError, ConnectionRefusedError):
                pass
            if i % 3000 == 0:
                t0 = time.monotonic()
                msg = query(a.port, "www.example.org", timeout=1.0)
                slowest = max(slowest, time.monotonic() - t0)
                assert rrs(msg.answer) == {"www.example.org. 3600 A 192.0.2.80"}
        assert sent > 10_000
        assert slowest < 1.0, slowest
        msg = query(a.port, "some.apps.example.org", timeout=1.0)
        assert rrs(msg.answer) == _expected("some.apps.example.org.", "A")
        resident = rss_kb(a.proc.pid)
        print(f"appliance: {sent} flood queries, slowest ordinary answer {slowest:.3f} s, "
              f"RSS {resident} kB")
        assert resident < 100 * 1024, f"resident memory {resident} kB after {sent} queries"
    finally:
        sock.close()
        a.stop()
