"""Zone loading: our master-file reader agrees with dnspython's; faults name file and line."""

from __future__ import annotations

from pathlib import Path

import dns.zone
import pytest
from dnstest_util import EXAMPLE_ZONE, LAB_ZONE, OTHER_ZONE
from fata_dns.errors import ZoneError
from fata_dns.zone import load_zone_text

RICH_ZONE = r"""; every syntax feature the reader handles itself or hands to dnspython
$TTL 1h
$ORIGIN Rich.Test.
@	IN	SOA	ns1.rich.test. hostmaster.rich.test. (
		42	; serial
		2h 30m 2w 5m )
	NS	ns1
	NS	ns2.elsewhere.example.
@	3600	IN	MX	5 mx
ns1	IN 600	A	192.0.2.1
	AAAA	2001:DB8::1
mx	A	192.0.2.2
txt	TXT	"two" "strings; not a comment" "with \"quotes\""
txt2	TXT	unquoted-word
srv._tcp	SRV	0 5 443 ns1
caa	CAA	128 issue "ca.example; account=1"
ds	DS	60485 5 1 ( 2BB183AF5F22588179A53B0A
			98631FAD1A292118 )
key	DNSKEY	256 3 13 ( oJMRESz5E4gYzS/q6XDrvU1qMPYIjCWzJaOau8XNEZeqCYKD5ar0IRd8KqXX
			FJkqmVfRvMGPmM1x8fGAa2XhSA== )
sshfp	SSHFP	1 1 123456789abcdef67890123456789abcdef67890
naptr	NAPTR	100 10 "S" "SIP+D2U" "" _sip._udp.rich.test.
hinfo	HINFO	"PC" "Linux"
tlsa	TLSA	3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
uri	URI	10 1 "https://example.org/"
generic	TYPE65400 \# 4 0a000001
esc\.aped	A	192.0.2.9
UPPER	CNAME	Mixed.Case.Target.
$ORIGIN sub.rich.test.
inner	A	192.0.2.10
rel	PTR	inner
$ORIGIN rich.test.
@	TXT	"back at the apex"
"""


def _ours(text: str, path: str = "z") -> set:
    zone = load_zone_text(path, text)
    return {(rr.owner, rr.rtype, rr.ttl, rd) for rr in zone.records for rd in rr.rdatas}


def _theirs(text: str, origin: str | None = None) -> set:
    zone = dns.zone.from_text(text, origin=origin, relativize=False)
    return {(n.to_wire().lower(), rds.rdtype, rds.ttl, rd.to_wire())
            for n, rds in zone.iterate_rdatasets() for rd in rds}


@pytest.mark.parametrize("text", [EXAMPLE_ZONE.read_text(), LAB_ZONE, OTHER_ZONE, RICH_ZONE],
                         ids=["example", "lab", "net", "rich"])
def test_reader_agrees_with_dnspython(text: str) -> None:
    ours = _ours(text)
    assert ours == _theirs(text)
    assert len(ours) > 5


def test_origin_from_file_name_when_no_origin(tmp_path: Path) -> None:
    text = "$TTL 60\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\n"
    zone = load_zone_text(str(tmp_path / "named.example.zone"), text)
    assert zone.origin_text == "named.example."


def host_zones() -> object:
    """The run-time store ``zones`` as ``fata run`` opens it without ``--kv``: host paths."""
    import os

    from fata.platform.kv_host import HostKV

    return HostKV("/", os.getcwd())


def test_include_relative_to_including_file(tmp_path: Path) -> None:
    from fata_dns.sources import load_kv_zone

    (tmp_path / "hosts").mkdir()
    (tmp_path / "hosts" / "part.inc").write_text("www A 192.0.2.80\n")
    (tmp_path / "other.inc").write_text("x A 192.0.2.81\n")
    (tmp_path / "main.zone").write_text(
        "$ORIGIN inc.test.\n$TTL 60\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\n"
        "$INCLUDE hosts/part.inc\n$INCLUDE other.inc sub.inc.test.\nafter A 192.0.2.82\n")
    zone = load_kv_zone(host_zones(), str(tmp_path / "main.zone"))
    owners = {rr.owner for rr in zone.records}
    assert b"\x03www\x03inc\x04test\x00" in owners
    assert b"\x01x\x03sub\x03inc\x04test\x00" in owners
    # The origin of the including file is restored after the $INCLUDE.
    assert b"\x05after\x03inc\x04test\x00" in owners


def test_include_error_names_the_included_file(tmp_path: Path) -> None:
    from fata_dns.sources import load_kv_zone

    (tmp_path / "bad.inc").write_text("ok A 192.0.2.1\nbad A 999.1.1.1\n")
    (tmp_path / "z.zone").write_text("$ORIGIN i.test.\n$TTL 5\n@ SOA a b 1 2 3 4 5\n@ NS a\n"
                                     "$INCLUDE bad.inc\n")
    with pytest.raises(ZoneError) as exc:
        load_kv_zone(host_zones(), str(tmp_path / "z.zone"))
    assert exc.value.file == str(tmp_path / "bad.inc") and exc.value.line == 2


HEAD = "$ORIGIN e.test.\n$TTL 60\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\nns A 192.0.2.1\n"


@pytest.mark.parametrize(("body", "line", "words"), [
    ("www A 192.0.2\n", 6, "IPv4"),
    ("www A 192.0.2.1\nwww2 AAAA ::g\n", 7, "IPv6"),
    ("x MX ten mail\n", 6, "MX"),
    ("x BOGUS 1\n", 6, "unknown record type"),
    ("x A\n", 6, "without data"),
    ("\n\nx CAA 0 issue\n", 8, ""),
    ("x TXT \"open\n", 6, "quoted"),
    ("x SOA ( 1 2\n", 6, "'('"),
    ("www.other.test. A 192.0.2.1\n", 6, "outside the zone"),
    ("c CNAME www\nc A 192.0.2.1\n", 6, "CNAME and other data"),
    ("x CH A 192.0.2.1\n", 6, "class"),
    ("$GENERATE 1-3 h$ A 192.0.2.$\n", 6, "unsupported directive"),
    ("sub SOA ns hm 1 2 3 4 5\n", 6, "SOA record below"),
    ("a" * 64 + " A 192.0.2.1\n", 6, "63"),
    ("x 99999999999 A 192.0.2.1\n", 6, "TTL"),
])
def test_errors_carry_file_and_line(body: str, line: int, words: str) -> None:
    with pytest.raises(ZoneError) as exc:
        load_zone_text("zones/e.zone", HEAD + body)
    assert exc.value.file == "zones/e.zone"
    assert exc.value.line == line
    assert str(exc.value).startswith(f"zones/e.zone:{line}: ")
    assert words in str(exc.value)
    assert "\n" not in str(exc.value)


def test_missing_soa_or_ns() -> None:
    with pytest.raises(ZoneError, match="no SOA"):
        load_zone_text("z", "$ORIGIN e.test.\n$TTL 5\n@ NS ns\n")
    with pytest.raises(ZoneError, match="no NS"):
        load_zone_text("z", "$ORIGIN e.test.\n$TTL 5\n@ SOA a b 1 2 3 4 5\n")


def test_duplicate_zone_rejected() -> None:
    from fata_dns.lookup import Catalog

    z = load_zone_text("a", LAB_ZONE)
    with pytest.raises(ZoneError, match="loaded twice"):
        Catalog([z, load_zone_text("b", LAB_ZONE)])


def test_load_catalog_is_all_or_nothing(tmp_path: Path) -> None:
    from fata_dns.sources import load_catalog

    good = tmp_path / "good.zone"
    good.write_text(LAB_ZONE)
    bad = tmp_path / "bad.zone"
    bad.write_text(HEAD + "broken A nope\n")
    with pytest.raises(ZoneError, match=r"bad\.zone:6:"):
        load_catalog([str(good), str(bad)], None, host_zones())
    missing = str(tmp_path / "missing.zone")
    with pytest.raises(ZoneError) as exc:
        load_catalog([missing], None, host_zones())
    assert str(exc.value) == f"{missing}: cannot read zone file: No such file or directory"
    assert list(load_catalog([str(good)], None, host_zones()).zones) == [
        b"\x03lab\x07example\x03org\x00"]


def test_ten_thousand_names_load_fast() -> None:
    import time

    lines = ["$ORIGIN big.test.", "$TTL 300", "@ SOA ns1 host 1 2 3 4 5", "@ NS ns1",
             "ns1 A 192.0.2.1"]
    lines += [f"h{i} A 10.0.{i // 256}.{i % 256}" for i in range(10_000)]
    start = time.perf_counter()
    zone = load_zone_text("big", "\n".join(lines))
    elapsed = time.perf_counter() - start
    assert len(zone.nodes) == 10_002
    assert elapsed < 2.0  # ~0.15-0.3 s here; generous for loaded CI machines


def test_zones_from_the_baked_kv_with_include(tmp_path: Path) -> None:
    from fata.platform.kv_dir import DirectoryKV
    from fata_dns.sources import load_catalog

    (tmp_path / "zones").mkdir()
    (tmp_path / "zones" / "a.zone").write_text(
        "$ORIGIN a.test.\n$TTL 5\n@ SOA ns hm 1 2 3 4 5\n@ NS ns\n$INCLUDE hosts.inc\n")
    (tmp_path / "zones" / "hosts.inc").write_text("ns A 192.0.2.1\n")
    (tmp_path / "example.zone").write_text(EXAMPLE_ZONE.read_text())
    (tmp_path / "README").write_text("not a zone")
    catalog = load_catalog([], DirectoryKV(tmp_path))
    assert sorted(z.origin_text for z in catalog.zones.values()) == ["a.test.", "example.org."]
    a = catalog.zones[b"\x01a\x04test\x00"]
    assert b"\x02ns\x01a\x04test\x00" in a.nodes
    with pytest.raises(ZoneError, match="no zones"):
        load_catalog([], DirectoryKV(tmp_path / "zones" / "empty"))
