"""OXM match fields: the table of the specification's fields, every field's wire form kept
exactly, and the checks a switch makes before installing a match (BAD_PREREQ and the rest)."""

from __future__ import annotations

import struct

import pytest
from fata_openflow_switch.messages import FlowMod, Malformed, decode_message
from fata_openflow_switch.ofp_const import OFPVID_PRESENT, BadMatchCode, ErrorType, OxmClass
from fata_openflow_switch.oxm import (
    FIELDS,
    FIELDS_BY_NAME,
    FieldSpec,
    Match,
    OxmTlv,
    check_match,
    oxm,
    oxm_header,
)
from fata_openflow_switch.wire import Reader
from hypothesis import given, settings
from hypothesis import strategies as st

from ._strategies import field_value

# Table 12 of the specification: name -> (number, bytes, maskable).
SPEC_TABLE = {
    "in_port": (0, 4, False), "in_phy_port": (1, 4, False), "metadata": (2, 8, True),
    "eth_dst": (3, 6, True), "eth_src": (4, 6, True), "eth_type": (5, 2, False),
    "vlan_vid": (6, 2, True), "vlan_pcp": (7, 1, False), "ip_dscp": (8, 1, False),
    "ip_ecn": (9, 1, False), "ip_proto": (10, 1, False), "ipv4_src": (11, 4, True),
    "ipv4_dst": (12, 4, True), "tcp_src": (13, 2, False), "tcp_dst": (14, 2, False),
    "udp_src": (15, 2, False), "udp_dst": (16, 2, False), "sctp_src": (17, 2, False),
    "sctp_dst": (18, 2, False), "icmpv4_type": (19, 1, False), "icmpv4_code": (20, 1, False),
    "arp_op": (21, 2, False), "arp_spa": (22, 4, True), "arp_tpa": (23, 4, True),
    "arp_sha": (24, 6, True), "arp_tha": (25, 6, True), "ipv6_src": (26, 16, True),
    "ipv6_dst": (27, 16, True), "ipv6_flabel": (28, 4, True), "icmpv6_type": (29, 1, False),
    "icmpv6_code": (30, 1, False), "ipv6_nd_target": (31, 16, False),
    "ipv6_nd_sll": (32, 6, False), "ipv6_nd_tll": (33, 6, False), "mpls_label": (34, 4, False),
    "mpls_tc": (35, 1, False), "mpls_bos": (36, 1, False), "pbb_isid": (37, 3, True),
    "tunnel_id": (38, 8, True), "ipv6_exthdr": (39, 2, True),
}
BAD_PREREQ = (ErrorType.BAD_MATCH, BadMatchCode.BAD_PREREQ)
SPECS = sorted(FIELDS.values(), key=lambda s: s.field)


def test_the_field_table_is_the_specifications() -> None:
    got = {s.name: (s.field, s.size, s.maskable) for s in FIELDS.values()}
    assert got == SPEC_TABLE
    assert FIELDS_BY_NAME["vlan_vid"].bits == 13 and FIELDS_BY_NAME["ipv6_exthdr"].bits == 9
    assert FIELDS_BY_NAME["mpls_label"].bits == 20 and FIELDS_BY_NAME["ip_dscp"].bits == 6


def test_a_match_is_laid_out_as_the_wire_has_it() -> None:
    match = Match((oxm("in_port", 3), oxm("eth_type", 0x0800), oxm("ipv4_src", 0x0A000000, 0xFF000000)))
    # type OXM, length 30 (without padding), three TLVs, two bytes of padding: what os-ken sends
    assert match.encode() == bytes.fromhex("0001001e" "8000000400000003" "80000a020800"
                                           "800017080a000000ff000000" "0000")
    assert oxm("ipv4_src", 1, 2).header == oxm_header(0x8000, 11, True, 8) == 0x80001708
    assert Match().encode() == bytes.fromhex("0001000400000000")


def _decode_match(data: bytes) -> Match:
    r = Reader(data)
    match = Match.decode(r)
    assert r.remaining == 0
    return match


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
@settings(max_examples=25)
@given(data=st.data())
def test_every_field_survives_the_wire_as_sent(spec: FieldSpec, data: st.DataObject) -> None:
    tlv = data.draw(field_value(spec, valid=data.draw(st.booleans())))
    others = data.draw(st.lists(st.sampled_from(SPECS).flatmap(field_value), max_size=3))
    match = Match(tuple([*others, tlv]))
    wire = match.encode()
    assert len(wire) % 8 == 0
    assert _decode_match(wire) == match
    assert _decode_match(wire).encode() == wire
    masked = tlv.mask is not None
    assert struct.unpack_from("!I", tlv.encode())[0] == oxm_header(
        OxmClass.OPENFLOW_BASIC, spec.field, masked, spec.size * (2 if masked else 1))


def test_tlvs_of_other_classes_are_kept_byte_for_byte() -> None:
    nxm = OxmTlv(33, b"\x01\x02\x03\x04", None, OxmClass.NXM_1)
    exp = OxmTlv(2, b"\xaa\xbb", b"\xff\x00", OxmClass.EXPERIMENTER, 0x4F4E4600)
    match = Match((nxm, exp, oxm("tcp_dst", 80)))
    assert _decode_match(match.encode()) == match
    assert exp.encode() == bytes.fromhex("ffff0508" "4f4e4600" "aabb" "ff00")
    assert check_match(match) == (ErrorType.BAD_MATCH, BadMatchCode.BAD_FIELD)


def _with_prereqs(spec: FieldSpec) -> list[OxmTlv]:
    """A match on ``spec``'s field preceded by the chain of its prerequisites, met."""
    chain: list[OxmTlv] = []
    prereq = spec.prereq
    while prereq is not None:
        need = FIELDS[prereq.field]
        value = prereq.values[0] if prereq.values else (prereq.bits or 1)
        chain.insert(0, oxm(need.field, value))
        prereq = need.prereq
    return [*chain, oxm(spec.field, 1 if spec.field != 6 else OFPVID_PRESENT | 1)]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_each_prerequisite_chain_is_checked_link_by_link(spec: FieldSpec) -> None:
    tlvs = _with_prereqs(spec)
    assert check_match(tlvs) is None
    assert check_match(list(reversed(tlvs))) is None  # order is not a prerequisite
    for i in range(len(tlvs) - 1):  # drop any link: refused
        assert check_match(tlvs[:i] + tlvs[i + 1:]) == BAD_PREREQ
    if spec.prereq is not None and spec.prereq.values:
        wrong = [*tlvs[:-2], oxm(spec.prereq.field, 0xFF), tlvs[-1]]
        assert check_match(wrong) == BAD_PREREQ


def test_the_prerequisites_are_table_12s() -> None:
    def needs(name: str) -> tuple[str, tuple[int, ...]] | None:
        p = FIELDS_BY_NAME[name].prereq
        return None if p is None else (FIELDS[p.field].name, p.values)

    assert needs("in_phy_port") == ("in_port", ())
    assert needs("ip_dscp") == needs("ip_proto") == ("eth_type", (0x0800, 0x86DD))
    assert needs("ipv4_src") == ("eth_type", (0x0800,))
    assert needs("arp_sha") == ("eth_type", (0x0806,))
    assert needs("ipv6_exthdr") == ("eth_type", (0x86DD,))
    assert needs("tcp_src") == ("ip_proto", (6,)) and needs("udp_dst") == ("ip_proto", (17,))
    assert needs("sctp_src") == ("ip_proto", (132,)) and needs("icmpv4_code") == ("ip_proto", (1,))
    assert needs("icmpv6_type") == ("ip_proto", (58,))
    assert needs("ipv6_nd_target") == ("icmpv6_type", (135, 136))
    assert needs("ipv6_nd_sll") == ("icmpv6_type", (135,))
    assert needs("ipv6_nd_tll") == ("icmpv6_type", (136,))
    assert needs("mpls_bos") == ("eth_type", (0x8847, 0x8848))
    assert needs("pbb_isid") == ("eth_type", (0x88E7,))
    for free in ("in_port", "metadata", "eth_dst", "eth_src", "eth_type", "vlan_vid", "tunnel_id"):
        assert needs(free) is None


def test_vlan_pcp_needs_a_vlan_present() -> None:
    pcp = oxm("vlan_pcp", 3)
    assert check_match([oxm("vlan_vid", OFPVID_PRESENT | 10), pcp]) is None
    assert check_match([oxm("vlan_vid", OFPVID_PRESENT, OFPVID_PRESENT), pcp]) is None
    assert check_match([oxm("vlan_vid", 0), pcp]) == BAD_PREREQ  # OFPVID_NONE
    assert check_match([oxm("vlan_vid", 0x60, 0xF0), pcp]) == BAD_PREREQ  # presence not matched
    assert check_match([pcp]) == BAD_PREREQ


@pytest.mark.parametrize(("tlvs", "code"), [
    ([oxm("in_port", 1), oxm("in_port", 2)], BadMatchCode.DUP_FIELD),
    ([oxm("in_port", 1, 0xFFFF)], BadMatchCode.BAD_MASK),
    ([oxm("eth_type", 0x0800, 0xFFFF)], BadMatchCode.BAD_MASK),
    ([oxm("vlan_vid", 0x2000)], BadMatchCode.BAD_VALUE),
    ([oxm("vlan_vid", 0x1000, 0x3000)], BadMatchCode.BAD_MASK),
    ([oxm("eth_type", 0x8847), oxm("mpls_bos", 2)], BadMatchCode.BAD_VALUE),
    ([oxm("eth_type", 0x0800), oxm("ip_dscp", 64)], BadMatchCode.BAD_VALUE),
    ([oxm("eth_type", 0x86DD), oxm("ipv6_exthdr", 0x200)], BadMatchCode.BAD_VALUE),
    ([oxm("eth_type", 0x86DD), oxm("ipv6_flabel", 0x100000)], BadMatchCode.BAD_VALUE),
    ([oxm("eth_type", 0x0800), oxm("ipv4_src", 0x0A000001, 0xFFFFFF00)], BadMatchCode.BAD_WILDCARDS),
    ([oxm("eth_dst", bytes(6), b"\xff" * 6)], None),
    ([OxmTlv(40, b"\x00")], BadMatchCode.BAD_FIELD),
    ([OxmTlv(5, b"\x08\x00", None, OxmClass.NXM_0)], BadMatchCode.BAD_FIELD),
], ids=["dup", "mask-in_port", "mask-eth_type", "vid-bits", "vid-mask-bits", "bos", "dscp",
        "exthdr", "flabel", "wildcards", "masked-ok", "unknown-field", "nxm-class"])
def test_field_errors_are_the_specifications(tlvs: list[OxmTlv], code: BadMatchCode | None) -> None:
    assert check_match(tlvs) == (None if code is None else (ErrorType.BAD_MATCH, code))


def _flow_mod_with_match(match_bytes: bytes) -> bytes:
    """A flow-mod whose match is ``match_bytes`` (header length fixed up)."""
    head = FlowMod(xid=0x77).encode()[:48]
    data = head + match_bytes
    return data[:2] + struct.pack("!H", len(data)) + data[4:]


@pytest.mark.parametrize(("match_bytes", "code"), [
    (bytes.fromhex("0000000400000000"), BadMatchCode.BAD_TYPE),  # OFPMT_STANDARD
    (bytes.fromhex("0001000300000000"), BadMatchCode.BAD_LEN),  # shorter than its header
    (bytes.fromhex("0001000a80000a02080000"), BadMatchCode.BAD_LEN),  # eth_type of 2 bytes, padding cut
    (bytes.fromhex("0001000980000a010800000000000000"), BadMatchCode.BAD_LEN),  # eth_type of 1 byte
    (bytes.fromhex("0001000880000a020800000000000000"), BadMatchCode.BAD_LEN),  # TLV past the match
    (bytes.fromhex("0001000b80000b030800000000000000"), BadMatchCode.BAD_LEN),  # masked, odd
    (bytes.fromhex("0001000e800000040000000300000000"), BadMatchCode.BAD_LEN),  # 2 bytes of a header
    (bytes.fromhex("0001001c"), BadMatchCode.BAD_LEN),  # the match runs past the message
])
def test_a_match_the_codec_cannot_read_is_refused_with_bad_len_or_bad_type(
        match_bytes: bytes, code: BadMatchCode) -> None:
    data = _flow_mod_with_match(match_bytes)
    result = decode_message(data)
    assert isinstance(result, Malformed)
    assert result.err == (ErrorType.BAD_MATCH, code)
    assert result.error.xid == 0x77 and result.error.data == data[:64]
