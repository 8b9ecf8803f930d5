"""The DNS engine, sans-IO: every answer kind of the issue, checked with dnspython."""

from __future__ import annotations

import struct

import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
import dns.rrset
import dns.zone
import pytest
from dnstest_util import EXAMPLE_ZONE, ask, make_server, rrs
from hypothesis import given, settings
from hypothesis import strategies as st

NOERROR, NXDOMAIN, REFUSED, FORMERR, NOTIMP = 0, 3, 5, 1, 4


def test_exact_match_aa_and_no_authority(server) -> None:
    r = ask(server, "www.example.org", "A")
    assert r.rcode() == NOERROR
    assert r.flags & dns.flags.AA
    assert rrs(r.answer) == {"www.example.org. 3600 A 192.0.2.80"}
    assert not r.authority


def test_question_case_echoed_and_matched_insensitively(server) -> None:
    for name in ("WWW.EXAMPLE.ORG", "wWw.ExAmPlE.oRg"):
        q = dns.message.make_query(name, "AAAA", use_edns=0)
        wire = q.to_wire()
        reply = server.handle_udp(wire)
        r = dns.message.from_wire(reply)
        assert r.question[0].name.to_text() == name + "."
        # The owner is a pointer to the question, so it carries the question's case too.
        assert r.answer[0].name.to_text() == name + "."
        assert rrs(r.answer) == {"www.example.org. 3600 AAAA 2001:db8::80"}


def test_id_patched_and_rd_cd_copied(server) -> None:
    q = dns.message.make_query("www.example.org", "A")
    q.flags |= dns.flags.CD
    for msg_id in (0, 1, 0xBEEF, 0xFFFF):
        q.id = msg_id
        r = dns.message.from_wire(server.handle_udp(q.to_wire()))
        assert r.id == msg_id
        assert r.flags & dns.flags.RD and r.flags & dns.flags.CD
        assert not r.flags & dns.flags.RA
    q.flags = 0
    r = dns.message.from_wire(server.handle_udp(q.to_wire()))
    assert not r.flags & (dns.flags.RD | dns.flags.CD)


def test_nxdomain_with_soa_negative_ttl(server) -> None:
    r = ask(server, "nope.example.org", "A")
    assert r.rcode() == NXDOMAIN and r.flags & dns.flags.AA
    assert not r.answer
    (soa,) = r.authority
    assert soa.rdtype == dns.rdatatype.SOA and soa.name.to_text() == "example.org."
    assert soa.ttl == 300  # min(SOA TTL 3600, MINIMUM 300), RFC 2308 section 3


def test_nodata_with_soa(server) -> None:
    r = ask(server, "mail2.example.org", "AAAA")
    assert r.rcode() == NOERROR and not r.answer
    assert [rr.rdtype for rr in r.authority] == [dns.rdatatype.SOA]


def test_cname_chain_followed_inside_zones(server) -> None:
    r = ask(server, "shop.example.org", "A")
    assert rrs(r.answer) == {
        "shop.example.org. 3600 CNAME web.example.org.",
        "web.example.org. 3600 CNAME www.example.org.",
        "www.example.org. 3600 A 192.0.2.80",
    }
    # A chain is followed inside its zone only, as BIND and Knot do: example.net's
    # jump -> www.example.org stops at the CNAME although we serve example.org too.
    r = ask(server, "jump.example.net", "AAAA")
    assert rrs(r.answer) == {"jump.example.net. 300 CNAME www.example.org."}
    assert r.rcode() == NOERROR and not r.authority
    # The CNAME itself when asked for.
    r = ask(server, "web.example.org", "CNAME")
    assert rrs(r.answer) == {"web.example.org. 3600 CNAME www.example.org."}


def test_cname_out_of_zone_and_dangling_and_loop(server) -> None:
    r = ask(server, "cdn.example.org", "A")
    assert rrs(r.answer) == {"cdn.example.org. 3600 CNAME cdn.example.net."}
    assert r.rcode() == NOERROR and not r.authority  # another zone: the chain stops
    # A dangling target inside the zone: NXDOMAIN with the CNAME (RFC 6604), SOA in authority.
    r = ask(server, "ftp.example.org", "A")
    assert r.rcode() == NXDOMAIN and len(r.answer) == 1
    assert r.authority[0].rdtype == dns.rdatatype.SOA
    # A loop: the chain is given once round (each CNAME once), then it stops; NOERROR, as
    # Knot answers (BIND: SERVFAIL), authoritative, nothing else.
    r = ask(server, "loop1.example.net", "A")
    assert r.rcode() == NOERROR and r.flags & dns.flags.AA
    assert rrs(r.answer) == {"loop1.example.net. 300 CNAME loop2.example.net.",
                             "loop2.example.net. 300 CNAME loop1.example.net."}
    assert [rrset.name.to_text() for rrset in r.answer] == ["loop1.example.net.",
                                                            "loop2.example.net."]
    assert not r.authority and not r.additional


def test_wildcard_synthesis(server) -> None:
    r = ask(server, "Anything.apps.example.org", "A")
    assert r.flags & dns.flags.AA
    assert r.answer[0].name.to_text() == "Anything.apps.example.org."
    assert rrs(r.answer) == {"anything.apps.example.org. 3600 A 192.0.2.100"}
    r = ask(server, "deep.er.apps.example.org", "TXT")
    assert rrs(r.answer) == {'deep.er.apps.example.org. 3600 TXT "wildcard"'}
    # Wildcard owner exists but not the type: NODATA, not NXDOMAIN.
    r = ask(server, "z.apps.example.org", "MX")
    assert r.rcode() == NOERROR and not r.answer and r.authority[0].rdtype == dns.rdatatype.SOA
    # A wildcard CNAME is followed.
    r = ask(server, "guide.docs.example.org", "A")
    assert "guide.docs.example.org. 3600 CNAME www.example.org." in rrs(r.answer)
    assert "www.example.org. 3600 A 192.0.2.80" in rrs(r.answer)


def test_wildcard_empty_non_terminal_and_existing_name_rules(server) -> None:
    # apps.example.org is an empty non-terminal: it exists, the wildcard does not apply.
    r = ask(server, "apps.example.org", "A")
    assert r.rcode() == NOERROR and not r.answer
    # x.apps exists (ENT above y.x.apps): names below it are not matched by *.apps
    # (the closest encloser is x.apps, and *.x.apps does not exist).
    r = ask(server, "z.x.apps.example.org", "A")
    assert r.rcode() == NXDOMAIN
    r = ask(server, "x.apps.example.org", "A")
    assert r.rcode() == NOERROR and not r.answer
    # The wildcard owner itself, asked literally.
    r = ask(server, "*.apps.example.org", "A")
    assert rrs(r.answer) == {"*.apps.example.org. 3600 A 192.0.2.100"}


def test_referral_with_glue_aa_clear() -> None:
    # Without the child zone loaded, example.org refers.
    from fata_dns.lookup import Catalog
    from fata_dns.server import Server
    from fata_dns.zone import load_zone_text

    srv = Server(Catalog([load_zone_text(str(EXAMPLE_ZONE), EXAMPLE_ZONE.read_text())]))
    for name in ("lab.example.org", "www.lab.example.org", "a.b.lab.example.org"):
        r = ask(srv, name, "A")
        assert r.rcode() == NOERROR
        assert not r.flags & dns.flags.AA
        assert not r.answer
        assert rrs(r.authority) == {"lab.example.org. 3600 NS ns1.lab.example.org.",
                                    "lab.example.org. 3600 NS ns2.lab.example.org."}
        assert rrs(r.additional) == {"ns1.lab.example.org. 3600 A 192.0.2.201",
                                     "ns2.lab.example.org. 3600 AAAA 2001:db8::202"}
    # NS at the cut is a referral too, not an authoritative answer.
    r = ask(srv, "lab.example.org", "NS")
    assert not r.answer and not r.flags & dns.flags.AA
    # DS is answered by the parent, authoritatively.
    r = ask(srv, "lab.example.org", "DS")
    assert r.flags & dns.flags.AA
    assert [rr.rdtype for rr in r.answer] == [dns.rdatatype.DS]


def test_closest_enclosing_zone_and_ds_from_parent(server) -> None:
    r = ask(server, "host.lab.example.org", "A")
    assert r.flags & dns.flags.AA
    assert rrs(r.answer) == {"host.lab.example.org. 600 A 192.0.2.210"}
    r = ask(server, "lab.example.org", "SOA")
    assert r.answer[0].ttl == 600 and r.flags & dns.flags.AA
    r = ask(server, "lab.example.org", "DS")
    assert [rr.rdtype for rr in r.answer] == [dns.rdatatype.DS]
    r = ask(server, "nothing.lab.example.org", "A")
    assert r.rcode() == NXDOMAIN and r.authority[0].name.to_text() == "lab.example.org."


def test_refused_outside_all_zones(server) -> None:
    for name in ("example.com", "org", ".", "xexample.org"):
        r = ask(server, name, "A")
        assert r.rcode() == REFUSED
        assert not r.flags & dns.flags.AA and not r.answer


def test_additional_for_ns_mx_srv_targets(server) -> None:
    r = ask(server, "example.org", "MX")
    assert rrs(r.additional) == {"mail.example.org. 3600 A 192.0.2.25",
                                 "mail.example.org. 3600 AAAA 2001:db8::25",
                                 "mail2.example.org. 600 A 192.0.2.26"}
    r = ask(server, "example.org", "NS")
    assert "ns1.example.org. 3600 A 192.0.2.1" in rrs(r.additional)
    assert "ns2.example.org. 3600 AAAA 2001:db8::2" in rrs(r.additional)
    r = ask(server, "_sip._tcp.example.org", "SRV")
    assert rrs(r.additional) == {"sip.example.org. 3600 A 192.0.2.50"}


def test_any_is_minimal(server) -> None:
    r = ask(server, "example.org", "ANY")
    assert r.rcode() == NOERROR and len(r.answer) == 1  # one RRset (RFC 8482)
    r = ask(server, "web.example.org", "ANY")
    assert [rr.rdtype for rr in r.answer] == [dns.rdatatype.CNAME]
    r = ask(server, "nope.example.org", "ANY")
    assert r.rcode() == NXDOMAIN


def test_common_types(server) -> None:
    r = ask(server, "example.org", "CAA")
    assert rrs(r.answer) == {'example.org. 3600 CAA 0 issue "letsencrypt.org"',
                             'example.org. 3600 CAA 0 iodef "mailto:security@example.org"'}
    r = ask(server, "_dmarc.example.org", "TXT")
    assert "p=reject" in r.answer[0][0].to_text()
    r = ask(server, "1.2.0.192.in-addr.example.org", "PTR")
    assert rrs(r.answer) == {"1.2.0.192.in-addr.example.org. 3600 PTR www.example.org."}


def test_edns_opt_echoed_and_absent(server) -> None:
    r = ask(server, "www.example.org", edns=0, payload=4096)
    assert r.edns == 0 and r.payload == 1232
    r = ask(server, "www.example.org", edns=None)
    assert r.edns == -1
    r = ask(server, "www.example.org", do=True)
    assert r.ednsflags & dns.flags.DO


def test_badvers(server) -> None:
    q = dns.message.make_query("www.example.org", "A", use_edns=1)
    r = dns.message.from_wire(server.handle_udp(q.to_wire()))
    assert r.rcode() == dns.rcode.BADVERS
    assert r.edns == 0 and not r.answer


def _big_server(n: int = 60):
    from fata_dns.lookup import Catalog
    from fata_dns.server import Server
    from fata_dns.zone import load_zone_text

    lines = ["$ORIGIN big.test.", "$TTL 60", "@ SOA ns hm 1 2 3 4 5", "@ NS ns",
             "ns A 10.0.0.1"]
    lines += [f"many A 10.1.{i // 250}.{i % 250}" for i in range(n)]
    lines += ["mx MX 10 many"]
    return Server(Catalog([load_zone_text("big", "\n".join(lines))]))


def test_truncation_512_without_edns_and_payload_honoured() -> None:
    srv = _big_server()
    r = ask(srv, "many.big.test", "A", edns=None)
    assert r.flags & dns.flags.TC and not r.answer
    wire = srv.handle_udp(dns.message.make_query("many.big.test", "A").to_wire())
    assert len(wire) <= 512
    r = ask(srv, "many.big.test", "A", edns=0, payload=1232)
    assert not r.flags & dns.flags.TC and len(r.answer[0]) == 60
    r = ask(srv, "many.big.test", "A", edns=0, payload=700)
    assert r.flags & dns.flags.TC
    # Additional records that do not fit are dropped without TC.
    r = ask(srv, "mx.big.test", "MX", edns=None)
    assert not r.flags & dns.flags.TC and r.answer and not r.additional
    # Over TCP everything fits.
    r = ask(srv, "many.big.test", "A", edns=None, tcp=True)
    assert not r.flags & dns.flags.TC and len(r.answer[0]) == 60


def _raw(server, payload: bytes) -> bytes | None:
    return server.handle_udp(payload, ("127.0.0.1", 1))


def test_formerr_for_several_opts(server) -> None:
    q = dns.message.make_query("www.example.org", "A", use_edns=0).to_wire()
    opt = q[-11:]
    doubled = q[:10] + b"\x00\x02" + q[12:] + opt
    r = dns.message.from_wire(_raw(server, doubled))
    assert r.rcode() == FORMERR
    assert r.edns == -1  # no OPT in the answer, as BIND and Knot


def test_notimp_for_unknown_opcode(server) -> None:
    for opcode in (1, 2, 3, 4, 5, 15):
        q = dns.message.make_query("www.example.org", "A", use_edns=False).to_wire()
        q = q[:2] + bytes([opcode << 3 | 1, 0]) + q[4:]
        reply = _raw(server, q)
        assert reply is not None
        assert reply[:2] == q[:2] and reply[3] & 0xF == NOTIMP
        assert (reply[2] >> 3) & 0xF == opcode and reply[2] & 0x80


def test_drops_counted(server) -> None:
    before = server.stats.dropped
    assert _raw(server, b"") is None
    assert _raw(server, b"\x12\x34\x00") is None
    response = bytearray(dns.message.make_query("www.example.org", "A").to_wire())
    response[2] |= 0x80  # QR: a response is never answered
    assert _raw(server, bytes(response)) is None
    assert server.stats.dropped == before + 3


@pytest.mark.parametrize("mutate", [
    lambda q: q[:4] + b"\x00\x02" + q[6:],           # QDCOUNT 2
    lambda q: q[:4] + b"\x00\x00" + q[6:],           # QDCOUNT 0
    lambda q: q[:20],                                 # truncated question
    lambda q: q + b"\x00",                            # trailing garbage
    lambda q: q[:12] + b"\x40abc" + q[16:],           # extended label type
    lambda q: q[:12] + b"\xc0\x0c" + q[-4:],          # pointer loop in the question
    lambda q: q[:10] + b"\x00\x01" + q[12:] + b"\x00\x00\x29\x04",  # truncated OPT
])
def test_formerr_on_malformed(server, mutate) -> None:
    q = dns.message.make_query("www.example.org", "A", use_edns=False).to_wire()
    reply = _raw(server, mutate(q))
    assert reply is not None
    assert reply[:2] == q[:2] and reply[3] & 0xF == FORMERR


def test_other_classes_and_meta_types(server) -> None:
    q = dns.message.make_query("www.example.org", "A", "CH")
    r = dns.message.from_wire(server.handle_udp(q.to_wire()))
    assert r.rcode() == REFUSED
    r = ask(server, "example.org", "AXFR")  # over UDP
    assert r.rcode() == FORMERR
    r = ask(server, "www.example.org", "MAILB")
    assert r.rcode() == NOTIMP
    r = ask(server, "example.org", "IXFR")  # over UDP: FORMERR, like BIND and Knot
    assert r.rcode() == FORMERR


def test_memo_paths_agree_with_fresh_engine(server) -> None:
    """The warmed memo, the exact-bytes cache and a cold engine give identical bytes."""
    names = [("www.example.org", "A"), ("shop.example.org", "AAAA"), ("a.apps.example.org", "A"),
             ("nope.example.org", "MX"), ("lab.example.org", "DS"), ("example.org", "NS")]
    cold = make_server()
    warm = make_server()
    for _ in warm.warm():
        pass
    for name, t in names:
        for edns in (None, 0):
            q = dns.message.make_query(name, t, use_edns=edns if edns is not None else False)
            q.id = 4242
            wire = q.to_wire()
            a = cold.handle_udp(wire)
            assert warm.handle_udp(wire) == a
            assert warm.handle_udp(wire) == a  # now from the exact cache
            assert cold.handle_udp(wire) == a


def test_reload_swaps_catalog_and_clears_caches() -> None:
    from fata_dns.lookup import Catalog
    from fata_dns.zone import load_zone_text

    srv = make_server()
    wire = dns.message.make_query("www.example.org", "A").to_wire()
    assert dns.message.from_wire(srv.handle_udp(wire)).rcode() == NOERROR
    cache = srv.reply_cache
    assert cache.prefix == 2 and wire[2:] in cache.entries  # what the platform answers from
    srv.load(Catalog([load_zone_text("n", "$ORIGIN other.test.\n$TTL 1\n@ SOA a b 1 2 3 4 5\n"
                                          "@ NS a\n")]))
    assert dns.message.from_wire(srv.handle_udp(wire)).rcode() == REFUSED
    # cleared in place: a platform holding the dict stops answering the old zone at once
    assert srv.reply_cache is cache and cache.entries[wire[2:]][1] & 0x0F == REFUSED


def test_axfr_allowed_and_refused() -> None:
    srv = make_server(axfr_allow=("127.0.0.0/8",))
    q = dns.message.make_query("Example.ORG", "AXFR")
    replies = srv.handle_tcp(q.to_wire(), ("127.0.0.1", 4000))
    msgs = [dns.message.from_wire(m, one_rr_per_rrset=True) for m in replies]
    records = [rr for m in msgs for rr in m.answer]
    assert records[0].rdtype == dns.rdatatype.SOA and records[-1].rdtype == dns.rdatatype.SOA
    assert msgs[0].question[0].name.to_text() == "Example.ORG."
    assert all(m.id == q.id and m.flags & dns.flags.AA for m in msgs)
    expected = dns.zone.from_text(EXAMPLE_ZONE.read_text(), relativize=False)
    got = {(rr.name, rr.rdtype, rr[0]) for rr in records}
    want = {(n, rds.rdtype, rd) for n, rds in expected.iterate_rdatasets() for rd in rds}
    assert got == want
    assert len(records) == len(want) + 1
    # Not on the allow-list.
    (refused,) = srv.handle_tcp(q.to_wire(), ("10.9.9.9", 4000))
    assert dns.message.from_wire(refused).rcode() == REFUSED
    # Not a zone apex we serve.
    q2 = dns.message.make_query("www.example.org", "AXFR")
    (notauth,) = srv.handle_tcp(q2.to_wire(), ("127.0.0.1", 4000))
    assert dns.message.from_wire(notauth).rcode() == dns.rcode.NOTAUTH


def test_axfr_splits_large_zones() -> None:
    srv = _big_server(3000)
    srv.axfr_allow = make_server(("0.0.0.0/0",)).axfr_allow
    q = dns.message.make_query("big.test", "AXFR")
    replies = srv.handle_tcp(q.to_wire(), ("127.0.0.1", 1))
    assert len(replies) > 1 and all(len(m) <= 65535 for m in replies)
    total = sum(struct.unpack("!H", m[6:8])[0] for m in replies)
    assert total == 3000 + 2 + 1 + 1 + 1  # A records + SOA twice + NS + ns A + MX


def test_tcp_session_pipelining_and_framing() -> None:
    from fata_dns.tcp import TcpSession

    srv = make_server()
    s = TcpSession(("127.0.0.1", 1), now=0.0, idle_timeout=5.0)
    qs = [dns.message.make_query(n, "A") for n in ("www.example.org", "mail.example.org",
                                                     "nope.example.org")]
    stream = b"".join(len(w).to_bytes(2, "big") + w for w in (q.to_wire() for q in qs))
    out = []
    for i in range(0, len(stream), 7):  # arbitrary segmentation
        out += s.receive(stream[i : i + 7], now=1.0, server=srv)
    assert len(out) == 3
    for q, framed in zip(qs, out, strict=True):
        assert int.from_bytes(framed[:2], "big") == len(framed) - 2
        assert dns.message.from_wire(framed[2:]).id == q.id
    assert not s.expired(5.9) and s.expired(6.0)
    # A message with no readable header ends the session.
    assert s.receive(b"\x00\x03abc", now=2.0, server=srv) == [] and s.closed


def test_notify_sender_retransmits_until_acknowledged() -> None:
    from fata_dns.notify import NotifySender

    srv = make_server()
    zone = srv.catalog.zones[b"\x07example\x03org\x00"]
    ids = iter([b"\x12\x34", b"\x12\x34"])
    sender = NotifySender(lambda n: next(ids), interval=1.0, attempts=3)
    target = ("127.0.0.1", 5300)
    sender.notify(zone, [target], now=0.0)
    (first,) = sender.on_timer(0.0)
    msg = dns.message.from_wire(first[0])
    assert msg.id == 0x1234  # from the random source
    assert msg.opcode() == dns.opcode.NOTIFY and msg.flags & dns.flags.AA
    assert msg.question[0].rdtype == dns.rdatatype.SOA
    assert msg.answer[0][0].serial == zone.serial
    assert sender.on_timer(0.5) == []
    assert len(sender.on_timer(1.0)) == 1
    reply = dns.message.make_response(msg)
    assert sender.on_reply(reply.to_wire(), target)
    assert sender.pending == 0 and sender.on_timer(5.0) == []
    sender.notify(zone, [target], now=10.0)  # the answered ID may come again
    assert dns.message.from_wire(sender.on_timer(10.0)[0][0]).id == 0x1234
    for t in (11.0, 12.0, 13.0):
        sender.on_timer(t)
    assert sender.pending == 0 and sender.given_up == 1


def test_notify_ids_are_random_and_never_repeat_an_outstanding_one() -> None:
    from fata_dns.notify import NotifySender

    srv = make_server()
    example, lab = (srv.catalog.zones[o] for o in (b"\x07example\x03org\x00",
                                                   b"\x03lab\x07example\x03org\x00"))
    drawn: list[int] = []
    ids = iter([b"\x12\x34", b"\x12\x34", b"\x12\x34", b"\xab\xcd"])

    def rand(n: int) -> bytes:
        drawn.append(n)
        return next(ids)

    sender = NotifySender(rand)
    one, two = ("127.0.0.1", 5300), ("127.0.0.2", 5300)
    sender.notify(example, [one, two], now=0.0)  # one ID per target; equal ones may coincide
    sender.notify(lab, [one], now=0.0)  # 0x1234 is outstanding to `one`: drawn again
    sent = {(dns.message.from_wire(m).id, t, dns.message.from_wire(m).question[0].name.to_text())
            for m, t in sender.on_timer(0.0)}
    assert drawn == [2, 2, 2, 2]
    assert {(i, n) for i, _, n in sent} == {(0x1234, "example.org."), (0xABCD, "lab.example.org.")}
    assert len(sent) == 3





_LABELS = ["nope", "x", "apps", "www", "web", "ftp", "ns1", "sub", "a-b", "Deep", "*", "_tcp",
           "_sip", "lab", "child", "q"]


@settings(max_examples=800, deadline=None)
@given(labels=st.lists(st.sampled_from(_LABELS) | st.text("abxyz-", min_size=1, max_size=6),
                       max_size=3),
       zone=st.sampled_from(["example.org", "apps.example.org", "docs.example.org",
                             "lab.example.org", "example.net", "unserved.test"]),
       qtype=st.sampled_from(["A", "AAAA", "MX", "TXT", "ANY", "DS", "NS", "SOA", "CNAME"]),
       edns=st.sampled_from([None, 0]), do=st.booleans(), rd=st.booleans(), cd=st.booleans(),
       payload=st.sampled_from([512, 1232, 4096]), upper=st.booleans())
def test_absent_name_shortcut_agrees_with_the_full_path(labels, zone, qtype, edns, do, rd, cd,
                                                        payload, upper) -> None:
    """Where the shortcut for absent names answers (NXDOMAIN, or a wildcard's answer from
    the template of names of that shape, learnt by the full path from another name of the
    same shape), the full engine gives the same message."""
    from fata_dns.server import _query_shape

    name = ".".join([*labels, zone])
    if upper:
        name = name.upper()

    def wire_for(qname: str) -> bytes:
        q = dns.message.make_query(qname, qtype, use_edns=edns if edns is not None else False,
                                   want_dnssec=do and edns is not None, payload=payload)
        q.flags = (dns.flags.RD if rd else 0) | (dns.flags.CD if cd else 0)
        q.id = 0x4242
        return q.to_wire()

    wire = wire_for(name)
    shape = _query_shape(wire)
    assert shape is not None
    # Another name of the same shape through the full path first (twice: admitted on its
    # second sighting once the memo is half full): it teaches a wildcard's template.
    sibling = ".".join(["w" * len(lab) for lab in labels] + [zone])
    for _ in range(2):
        _SERVER._answer_bytes(wire_for(sibling), tcp=False)
    fast = _SERVER._absent_fast(wire, *shape)
    if fast is None:
        return
    full_bytes = _SERVER._answer_bytes(wire, tcp=False)
    full = dns.message.from_wire(full_bytes)
    got = dns.message.from_wire(fast)
    if full.rcode() != NXDOMAIN:  # a wildcard's answer: the very bytes of the full path
        assert fast == full_bytes
        assert full.rcode() == 0 and zone in ("apps.example.org", "docs.example.org")
        return
    assert got.rcode() == NXDOMAIN
    assert got.id == full.id and got.flags == full.flags
    assert [str(x) for x in got.question] == [str(x) for x in full.question]  # case echoed
    assert got.answer == full.answer == []
    assert got.authority == full.authority
    assert [rr.ttl for rr in got.authority] == [rr.ttl for rr in full.authority]
    assert (got.edns, got.ednsflags, got.payload) == (full.edns, full.ednsflags, full.payload)
    assert got.additional == full.additional


def test_a_wildcards_answers_take_one_memo_entry_per_shape() -> None:
    """Thousands of distinct names of one shape under a wildcard: one memo entry (per size
    class), every answer right and naming its own question."""
    srv = make_server()
    before = len(srv._memo)
    for i in range(3000):
        name = f"h{i:05d}.apps.example.org"
        q = dns.message.make_query(name, "A")
        q.id = i
        reply = dns.message.from_wire(srv.handle_udp(q.to_wire()))
        assert reply.id == i and str(reply.question[0].name) == name + "."
        assert [str(rr) for rr in reply.answer] == [f"{name}. 3600 IN A 192.0.2.100"]
    assert len(srv._memo) - before == 1
    assert srv.stats.queries_slow == 3000  # never in the reply cache below Python


_SERVER = make_server()


def test_fast_nxdomain_takes_only_plain_nxdomain() -> None:
    from fata_dns.server import _query_shape

    fresh = make_server()  # no wildcard template learnt yet

    def fast(name: str, qtype: str = "A", **kw) -> bytes | None:
        wire = dns.message.make_query(name, qtype, **kw).to_wire()
        return fresh._absent_fast(wire, *_query_shape(wire))

    assert fast("nope.example.org") is not None
    assert fast("zz9.Deep.Example.ORG", "MX", use_edns=0) is not None
    assert fast("nope.lab.example.org") is not None  # the child zone's own NXDOMAIN
    assert fast("q.x.apps.example.org") is not None  # below x.apps: no wildcard there
    assert fast("www.example.org") is None  # exists
    assert fast("q.apps.example.org") is None  # a wildcard answers, not learnt yet
    assert fast("nope.example.org", want_dnssec=True) is None  # DO: the full path
    assert fast("nope.example.org", "DS") is None
    assert fast("nope.unserved.test") is None  # REFUSED: the full path
    server = make_server()
    server._answer_bytes = None  # the full path would now fail (as SERVFAIL)
    for i in range(50):  # a random-name flood: every answer is NXDOMAIN, none parsed fully
        reply = server.handle_udp(dns.message.make_query(f"r{i}x.example.org", "A").to_wire())
        assert dns.message.from_wire(reply).rcode() == NXDOMAIN
