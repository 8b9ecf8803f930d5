"""The master-file reader's fast path gives exactly what its general path gives.

The fast path (one ``split()`` per plain line, names from a suffix cache, rdata converted
in place) exists for start-up time only; the general path is the reference.  Both are run
on the same text and must give the same records, in the same order, with the same file
and line, or fail with the same error.  Generated zones (the benchmark's generator and
hypothesis) cover the line shapes the fast path takes and the ones it must hand over.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import dns.zone
import pytest
from fata_dns.errors import ZoneError
from fata_dns.master import read_zone_text
from fata_dns.zone import load_zone_text
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
ORIGIN = b"\x01z\x04test\x00"


def _bench_zones():
    """The benchmark's zone generator, loaded by path (``bench`` is not a package name
    to put on ``sys.path`` beside other appliances' benchmarks)."""
    name = "fata_dns_bench_zones"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, ROOT / "appliances" / "dns" / "bench" / "zones.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _read(text: str, fast: bool, origin: bytes | None = ORIGIN):
    try:
        return read_zone_text("f.zone", text, origin, fast=fast)
    except ZoneError as exc:
        return ("error", str(exc), exc.file, exc.line)


def _both_agree(text: str, origin: bytes | None = ORIGIN):
    fast = _read(text, True, origin)
    assert fast == _read(text, False, origin)
    return fast


def _theirs(text: str) -> set:
    zone = dns.zone.from_text(text, relativize=False)
    return {(n.to_wire().lower(), rds.rdtype, rds.ttl, rd.to_wire())
            for n, rds in zone.iterate_rdatasets() for rd in rds}


def _ours(text: str) -> set:
    zone = load_zone_text("g.zone", text)
    return {(rr.owner, rr.rtype, rr.ttl, rd) for rr in zone.records for rd in rr.rdatas}


@pytest.mark.parametrize("size", [1, 300])
def test_benchmark_zone_fast_equals_general_and_dnspython(size: int) -> None:
    text = _bench_zones().generate_zone(size).to_text()
    origin, records = _both_agree(text, None)
    assert origin == b"\x05bench\x04fata\x04test\x00"
    assert len(records) == 3 + size + (size + 3) // 4
    assert _ours(text) == _theirs(text)


def test_relative_zone_with_every_fast_type_agrees_with_dnspython() -> None:
    lines = ["$ORIGIN Fast.Test.", "$TTL 300", "@ SOA ns1 Host.Master 1 2 3 4 5", "@ NS ns1",
             "@ 60 IN NS ns2.elsewhere.example.", "@ IN 60 MX 10 mail", "ns1 A 192.0.2.1",
             "mail\tIN\tAAAA\t2001:db8::1 ; comment", "\tA 192.0.2.2\r", "www CNAME Mail",
             "p PTR ns1.fast.test.", "d DNAME other.example.", "deep.er A 192.0.2.3"]
    lines += [f"h{i} {i % 3 + 1} A 10.0.{i // 256}.{i % 256}" for i in range(200)]
    text = "\n".join(lines) + "\n"
    _, records = _both_agree(text, None)
    assert len(records) == 211
    assert _ours(text) == _theirs(text)


# -- hypothesis: line shapes the fast path takes, and ones it must hand over -------------

# Each field is drawn from values the fast path takes (three times in four) or values it
# must hand over or that are errors, so that most texts get far before their first fault.
_LONG_SUFFIX = "a." * 122 + "z.test."


def _mostly(good: list[str], other: list[str]) -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(good), st.sampled_from(good), st.sampled_from(good),
                     st.sampled_from(other))


_OWNERS = _mostly(
    ["@", "", "a", "B", "a.b", "x.z.test.", "X.Z.TEST.", "z.test.", "*", "*.w", "-", "a" * 63,
     # 254 octets (its suffix gets cached), then 256 with the same suffix: too long
     "x." + _LONG_SUFFIX, "xyz." + _LONG_SUFFIX],
    ["other.test.", "tld.", ".", "a..b", ".a", "a" * 64, "é", "a\\.b", "$TTL", "$ORIGIN"])
_TTLS = _mostly(["", "", "0", "60", "2147483647", "00060"], ["2147483648", "1h", "1x"])
_CLASSES = _mostly(["", "", "IN", "in"], ["CH", "ANY", "NONE"])
_RECORDS = _mostly(
    ["A 192.0.2.1", "a 192.0.2.1", "AAAA 2001:db8::1", "NS ns", "NS ns.z.test.", "CNAME @",
     "CNAME t", "PTR p.other.", "PTR tld.", "DNAME d", "MX 10 mx", "mx 0 Mx.Z.Test.",
     "SOA ns hm 1 2 3 4 5", "A 192.0.2.1 ; note", "TYPE1 192.0.2.9"],
    ["A 192.0.2", "A 192.0.2.1 extra", "A", "A ::1", "AAAA ::g", "NS a..b", "MX ten mx",
     "MX 70000 mx", "MX 10", "SOA ns hm 1 2 3 4 1h", "SOA ns hm 1 2 3", "TXT word",
     'TXT "quoted; text"', "ANY 1", "NONE 1", "BOGUS 1", "SRV 0 5 443 t", "A (192.0.2.1)",
     "SOA ( ns hm 1 2 3 4 5 )", "CNAME " + "b" * 64])
_DIRECTIVES = st.sampled_from(["$TTL 60", "$ORIGIN sub", "$ORIGIN Z.test.", "$TTL 1h",
                               "$ORIGIN", "$BOGUS 1", "; only a comment", "", "   "])


@st.composite
def _lines(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 7)) == 0:
        return draw(_DIRECTIVES)
    owner = draw(_OWNERS)
    ttl, klass = draw(_TTLS), draw(_CLASSES)
    fields = [ttl, klass] if draw(st.booleans()) else [klass, ttl]
    sep = draw(st.sampled_from([" ", "\t", "  "]))
    body = sep.join(f for f in [*fields, draw(_RECORDS)] if f)
    end = draw(st.sampled_from(["", "\r", " ; c", "\t"]))
    return (owner + sep if owner else sep) + body + end


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_lines(), max_size=12), st.booleans(), st.booleans())
def test_fast_and_general_paths_agree(lines: list[str], with_ttl: bool,
                                      with_origin: bool) -> None:
    text = ("$TTL 300\n" if with_ttl else "") + "\n".join(lines) + "\n"
    _both_agree(text, ORIGIN if with_origin else None)
