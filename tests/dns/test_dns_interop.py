"""Our answers against BIND's named and Knot's knotd serving the same zones.

Each peer runs in the foreground from a temporary directory on a loopback port.  For every
question the rcode, the AA and TC flags and the three sections (as sets of records) must be
the same as the peer's, apart from the few documented, deliberate differences below.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.zone
import pytest
from dnstest_util import RunningAppliance, free_port, query, rrs, wait_answer, wait_until
from test_dns_appliance import write_zones, zone_args

ORIGINS = {"example.zone": "example.org", "lab.zone": "lab.example.org",
           "net.zone": "example.net", "big.zone": "big.test"}

QUESTIONS = [
    ("www.example.org", "A"), ("WWW.example.ORG", "AAAA"), ("example.org", "SOA"),
    ("example.org", "NS"), ("example.org", "MX"), ("example.org", "TXT"), ("example.org", "CAA"),
    ("example.org", "DNSKEY"), ("shop.example.org", "A"), ("web.example.org", "CNAME"),
    ("cdn.example.org", "A"), ("ftp.example.org", "A"), ("nope.example.org", "A"),
    ("deep.nope.example.org", "TXT"), ("mail2.example.org", "AAAA"), ("a.apps.example.org", "A"),
    ("a.b.apps.example.org", "TXT"), ("apps.example.org", "A"), ("x.apps.example.org", "A"),
    ("z.x.apps.example.org", "A"), ("y.x.apps.example.org", "A"), ("q.apps.example.org", "MX"),
    ("*.apps.example.org", "A"), ("guide.docs.example.org", "AAAA"), ("lab.example.org", "DS"),
    ("lab.example.org", "SOA"), ("lab.example.org", "NS"), ("host.lab.example.org", "A"),
    ("none.lab.example.org", "A"), ("_sip._tcp.example.org", "SRV"),
    ("_dmarc.example.org", "TXT"), ("jump.example.net", "A"), ("loop1.example.net", "A"),
    ("example.com", "A"), ("org", "SOA"), ("many.big.test", "A"), ("ns1.example.org", "AAAA"),
    ("1.2.0.192.in-addr.example.org", "PTR"), ("example.org", "ANY"), ("target.example.net", "A"),
]

# (peer, name, type) -> why the answers legitimately differ, and what each side answers:
# (rcode, answer records) from the peer, then from us.
LOOP_CHAIN = {"loop1.example.net. 300 CNAME loop2.example.net.",
              "loop2.example.net. 300 CNAME loop1.example.net."}
KNOWN = {
    ("bind", "loop1.example.net", "A"): (
        "a CNAME loop: BIND answers SERVFAIL, Knot and we NOERROR, all with the chain",
        ("SERVFAIL", LOOP_CHAIN), ("NOERROR", LOOP_CHAIN)),
    ("bind", "example.org", "ANY"): (
        "RFC 8482 lets the server pick the one RRset; BIND picks SOA, Knot and we pick A",
        ("NOERROR", {"example.org. 3600 SOA ns1.example.org. hostmaster.example.org. "
                     "2026112301 7200 3600 1209600 300"}),
        ("NOERROR", {"example.org. 3600 A 192.0.2.10"})),
}


def _named(tmp: Path, zones: list[Path], port: int) -> subprocess.Popen:
    conf = tmp / "named.conf"
    conf.write_text(
        f'options {{ directory "{tmp}"; listen-on port {port} {{ 127.0.0.1; }};\n'
        f'  listen-on-v6 {{ none; }}; recursion no; pid-file "{tmp}/named.pid";\n'
        f'  session-keyfile "{tmp}/session.key"; notify no; dnssec-validation no;\n'
        "  allow-transfer { 127.0.0.1; };\n"
        # Like Knot and us: no NS in the authority section of positive answers, and
        # RFC 8482 minimal ANY.
        "  minimal-responses no-auth; minimal-any yes; };\ncontrols { };\n"
        + "".join(f'zone "{ORIGINS[z.name]}" {{ type primary; file "{z}"; }};\n' for z in zones))
    return subprocess.Popen(["named", "-g", "-c", str(conf), "-u", "root"],
                            stdout=(tmp / "named.log").open("w"), stderr=subprocess.STDOUT)


def _knotd(tmp: Path, zones: list[Path], port: int) -> subprocess.Popen:
    (tmp / "knot").mkdir()
    conf = tmp / "knot.conf"
    conf.write_text(
        f"server:\n    listen: 127.0.0.1@{port}\n    rundir: {tmp}/knot\n"
        f"database:\n    storage: {tmp}/knot\n"
        "acl:\n  - id: transfer\n    address: 127.0.0.1\n    action: transfer\nzone:\n"
        + "".join(f"  - domain: {ORIGINS[z.name]}\n    file: {z}\n    acl: transfer\n"
                  for z in zones))
    return subprocess.Popen(["knotd", "-c", str(conf)],
                            stdout=(tmp / "knot.log").open("w"), stderr=subprocess.STDOUT)


PEERS = {"bind": ("named", _named), "knot": ("knotd", _knotd)}
PEER_PARAMS = [pytest.param(name, marks=pytest.mark.tool(binary), id=name)
               for name, (binary, _start) in sorted(PEERS.items())]


@pytest.fixture(scope="module")
def ours(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("interop-ours")
    a = RunningAppliance([*zone_args(write_zones(tmp / "zones")), "--axfr-allow", "127.0.0.1"],
                         tmp)
    try:
        a.wait()
        yield a.port
    finally:
        a.stop()


@pytest.fixture(scope="module", params=PEER_PARAMS)
def peer(request, tmp_path_factory):
    name = request.param
    _binary, start = PEERS[name]
    tmp = tmp_path_factory.mktemp(f"interop-{name}")
    port = free_port()
    proc = start(tmp, write_zones(tmp / "zones"), port)
    try:
        wait_answer(port, "example.org.", proc, timeout=30)
        wait_answer(port, "big.test.", proc, timeout=30)
        yield name, port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _norm(r: dns.message.Message) -> dict:
    return {
        "rcode": dns.rcode.to_text(r.rcode()),
        "flags": [f for f in ("AA", "TC") if r.flags & getattr(dns.flags, f)],
        "answer": rrs(r.answer),
        "authority": rrs(r.authority),
        "additional": rrs(r.additional),
        "question": [q.name.to_text() for q in r.question],
    }


@pytest.mark.parametrize("transport", ["udp-edns", "udp-plain", "tcp"])
def test_same_answers_as_peer(ours, peer, transport) -> None:
    name, port = peer
    differences = []
    for qname, qtype in QUESTIONS:
        if (name, qname, qtype) in KNOWN:
            continue
        kwargs = {"tcp": transport == "tcp", "use_edns": False if transport == "udp-plain" else 0}
        a = _norm(query(ours, qname, qtype, **kwargs))
        b = _norm(query(port, qname, qtype, **kwargs))
        if transport == "udp-plain" and "TC" in b["flags"]:
            # Both must truncate; what a truncated answer still holds is up to the server.
            a = {k: v for k, v in a.items() if k in ("rcode", "flags")}
            b = {k: v for k, v in b.items() if k in ("rcode", "flags")}
        if a != b:
            differences.append((qname, qtype, {k: (a[k], b[k]) for k in a if a[k] != b[k]}))
    assert not differences, "\n".join(f"{n} {t}: ours vs {name}: {d}" for n, t, d in differences)


def test_known_differences_are_as_documented(ours, peer) -> None:
    """Each documented difference is exactly the one described: the peer's answer and ours
    (if a peer changes to our behaviour, the exception above should go)."""
    name, port = peer
    for (peer_name, qname, qtype), (why, theirs, mine) in KNOWN.items():
        if peer_name != name:
            continue
        for server, expected in ((port, theirs), (ours, mine)):
            r = query(server, qname, qtype)
            assert (dns.rcode.to_text(r.rcode()), rrs(r.answer)) == expected, (why, server)


@pytest.mark.parametrize("zone", ["example.org", "big.test", "lab.example.org"])
def test_axfr_same_records_as_peer(ours, peer, zone) -> None:
    _name, port = peer
    assert _axfr(ours, zone) == _axfr(port, zone)


def _axfr(port: int, zone: str) -> set[str]:
    z = dns.zone.from_xfr(dns.query.xfr("127.0.0.1", zone + ".", port=port, timeout=5,
                                          relativize=False),
                          relativize=False)
    return {f"{n} {rds.ttl} {rds.rdtype} {rd}" for n, rds in z.iterate_rdatasets() for rd in rds}


@pytest.mark.tool("knotd")
def test_knot_secondary_transfers_and_follows_notify(tmp_path: Path) -> None:
    """Knot as our secondary: it transfers the zone from us (SOA query, then AXFR), and on
    our SIGHUP with a higher serial it receives our NOTIFY, asks IXFR, gets the zone again
    (RFC 1995 section 4 full answer) and serves the new data."""
    import signal

    zone = tmp_path / "sec.zone"
    text = ("$ORIGIN sec.test.\n$TTL 60\n@ SOA ns hm {serial} 3600 600 86400 60\n@ NS ns\n"
            "ns A 192.0.2.1\nwww A {addr}\n")
    zone.write_text(text.format(serial=10, addr="192.0.2.10"))
    knot_port = free_port()
    app = RunningAppliance(["--zone", str(zone), "--axfr-allow", "127.0.0.1",
                            "--notify", f"127.0.0.1:{knot_port}"], tmp_path)
    knot = None
    try:
        app.wait("sec.test.")
        (tmp_path / "knot").mkdir()
        conf = tmp_path / "knot.conf"
        conf.write_text(
            f"server:\n    listen: 127.0.0.1@{knot_port}\n    rundir: {tmp_path}/knot\n"
            f"database:\n    storage: {tmp_path}/knot\n"
            f"remote:\n  - id: primary\n    address: 127.0.0.1@{app.port}\n"
            "acl:\n  - id: notify\n    address: 127.0.0.1\n    action: notify\n"
            "zone:\n  - domain: sec.test\n    master: primary\n    acl: notify\n"
            f"    file: {tmp_path}/knot/sec.test.zone\n")
        knot = subprocess.Popen(["knotd", "-c", str(conf)],
                                stdout=(tmp_path / "knot.log").open("w"),
                                stderr=subprocess.STDOUT)

        def knot_has(addr: str) -> bool:
            try:
                return addr in str(query(knot_port, "www.sec.test", timeout=0.5).answer)
            except Exception:  # not up yet
                return False

        knot_log = (tmp_path / "knot.log").read_text
        wait_until(lambda: knot_has("192.0.2.10"), timeout=20, what="Knot's first transfer",
                   detail=knot_log)
        zone.write_text(text.format(serial=11, addr="192.0.2.11"))
        app.signal(signal.SIGHUP)
        # The SOA refresh interval is an hour: only our NOTIFY can make Knot fetch this soon.
        wait_until(lambda: knot_has("192.0.2.11"), timeout=20, what="Knot following NOTIFY",
                   detail=knot_log)
        r = query(knot_port, "sec.test", "SOA")
        assert r.answer[0][0].serial == 11
        assert "NOTIFY sec.test. serial 11" in app.output()
    finally:
        app.stop()
        if knot is not None:
            knot.terminate()
            knot.wait(10)


def _malformed_cases() -> dict[str, bytes]:
    def q(name: str, rdtype: str, **kw) -> bytes:
        return dns.message.make_query(name, rdtype, **kw).to_wire()

    base = q("www.example.org", "A", use_edns=0)
    plain = q("www.example.org", "A")
    return {
        "AXFR over UDP": q("example.org", "AXFR"),
        "IXFR over UDP": q("example.org", "IXFR"),
        "MAILB": q("www.example.org", "MAILB"),
        "class CH": q("www.example.org", "A", rdclass="CH"),
        "qtype OPT": q("www.example.org", "OPT"),
        "EDNS version 1": q("www.example.org", "A", use_edns=1),
        "QDCOUNT 0": plain[:4] + b"\x00\x00" + plain[6:12],
        "QDCOUNT 2": plain[:4] + b"\x00\x02" + plain[6:],
        "ANCOUNT 1, no record": plain[:6] + b"\x00\x01" + plain[8:],
        "truncated question": plain[:20],
        "header only": plain[:12],
        "two OPT records": base[:10] + b"\x00\x02" + base[12:] + base[-11:],
        "OPT owner not root": base[:-11] + b"\x01a\x00" + base[-10:],
        "opcode 3": plain[:2] + bytes([3 << 3, 0]) + plain[4:],
    }


def _raw_udp(port: int, data: bytes) -> tuple | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.sendto(data, ("127.0.0.1", port))
        reply = s.recv(65535)
    m = dns.message.from_wire(reply)
    return (dns.rcode.to_text(m.rcode()), m.opcode(), len(m.question), len(m.answer), m.edns,
            bool(m.flags & dns.flags.AA))


# Error answers where Knot differs from BIND and us (Knot does not answer at all when the
# question cannot be read, answers NOTIMP to AXFR over UDP, NOERROR to MAILB, to a qtype
# of OPT and to an OPT with a non-root owner, and echoes the question with NOTIMP).
KNOT_DIFFERS = {"AXFR over UDP", "MAILB", "qtype OPT", "QDCOUNT 0", "QDCOUNT 2",
                "truncated question", "header only", "OPT owner not root", "opcode 3"}


def test_malformed_and_unsupported_like_peers(ours, peer) -> None:
    """FORMERR, NOTIMP, BADVERS, REFUSED: same rcode, opcode, question echo and OPT as
    BIND in every case, and as Knot where Knot agrees with BIND."""
    name, port = peer
    differences = {}
    for label, data in _malformed_cases().items():
        if name == "knot" and label in KNOT_DIFFERS:
            continue
        a, b = _raw_udp(ours, data), _raw_udp(port, data)
        if a != b:
            differences[label] = (a, b)
    assert not differences, differences
