"""Small self-contained checks of the DNS appliance that a fork (``fata new``) carries along.

They use only the baked zone in ``data/`` and the engine (no network, no peers); the full
interoperability suite lives in the project's ``tests/dns/``.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import dns.flags  # noqa: E402
import dns.message  # noqa: E402
import dns.name  # noqa: E402
import dns.rcode  # noqa: E402

from fata_dns.lookup import Catalog  # noqa: E402
from fata_dns.server import Server  # noqa: E402
from fata_dns.zone import load_zone_text  # noqa: E402


def _server() -> Server:
    zones = [load_zone_text(str(p), p.read_text()) for p in sorted((HERE / "data").glob("*.zone"))]
    return Server(Catalog(zones))


def _ask(server: Server, name: str, rdtype: str) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype)
    reply = server.handle_udp(q.to_wire(), ("127.0.0.1", 1))
    assert reply is not None
    r = dns.message.from_wire(reply)
    assert r.id == q.id
    return r


def test_baked_zone_loads_and_answers() -> None:
    server = _server()
    assert server.catalog.zones, "data/ holds no *.zone file"
    for zone in server.catalog.zones.values():
        r = _ask(server, zone.origin_text, "SOA")
        assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA
        assert r.answer[0][0].serial == zone.serial


def test_unknown_names_and_outside_names() -> None:
    server = _server()
    zone = next(iter(server.catalog.zones.values()))
    r = _ask(server, "no-such-name-here." + zone.origin_text, "A")
    assert r.rcode() == dns.rcode.NXDOMAIN and r.authority
    r = _ask(server, "outside.invalid.", "A")
    assert r.rcode() == dns.rcode.REFUSED


def test_every_record_of_the_baked_zone_is_answerable() -> None:
    server = _server()
    for zone in server.catalog.zones.values():
        for owner, node in zone.nodes.items():
            if zone.find_cut(owner) is not None:
                continue  # delegated: referrals, not answers
            for rtype in node:
                q = dns.message.make_query(dns.name.from_wire(owner, 0)[0], rtype)
                r = dns.message.from_wire(server.handle_udp(q.to_wire()))
                assert r.rcode() == dns.rcode.NOERROR
                assert any(rr.rdtype == rtype for rr in r.answer) or r.flags & dns.flags.TC



