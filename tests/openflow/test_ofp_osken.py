"""The codec against its real peer, os-ken's OpenFlow 1.3 library (the controller side of
os-ken's switch tester): what os-ken serializes we decode field for field, what we encode
os-ken parses field for field, and os-ken's own test vectors and switch-tester messages go
through exact to the byte."""

from __future__ import annotations

import glob
import json
import os

import pytest

os_ken = pytest.importorskip(
    "os_ken", reason="needs os-ken, the codec's real peer: "
                     "pip install -e 'appliances/openflow_switch[test]'",
    exc_type=ImportError)

from fata_openflow_switch import actions as A  # noqa: E402
from fata_openflow_switch import instructions as I  # noqa: E402
from fata_openflow_switch import messages as M  # noqa: E402
from fata_openflow_switch import multipart as MP  # noqa: E402
from fata_openflow_switch.actions import check_set_field  # noqa: E402
from fata_openflow_switch.connection import Connection, Negotiated  # noqa: E402
from fata_openflow_switch.meter_bands import DropBand, DscpRemarkBand  # noqa: E402
from fata_openflow_switch.ofp_const import OxmField, TableFeaturePropType  # noqa: E402
from fata_openflow_switch.oxm import check_match  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from os_ken.ofproto import ofproto_parser  # noqa: E402
from os_ken.ofproto import ofproto_v1_3 as ofp  # noqa: E402
from os_ken.ofproto import ofproto_v1_3_parser as p  # noqa: E402

from . import _osken as K  # noqa: E402
from ._strategies import message_strategies, reply_bodies, request_bodies  # noqa: E402

SAFE = message_strategies(osken_safe=True)
OSKEN_DIR = os.path.dirname(os_ken.__file__)


def _multipart(cls: type, bodies: dict) -> list[tuple[str, st.SearchStrategy]]:
    return [(f"{cls.__name__}-{body.__name__}",
             st.builds(cls, strategy, st.integers(0, 0xFFFF), xid=st.integers(0, 0xFFFFFFFF)))
            for body, strategy in bodies.items()]


TO_CONTROLLER = [(c.__name__, SAFE[c]) for c in K.SWITCH_TO_CONTROLLER if c is not M.MultipartReply]
TO_CONTROLLER += _multipart(M.MultipartReply, reply_bodies(osken_safe=True))
TO_SWITCH = [(c.__name__, SAFE[c]) for c in K.CONTROLLER_TO_SWITCH if c is not M.MultipartRequest]
TO_SWITCH += _multipart(M.MultipartRequest, request_bodies(osken_safe=True))


@pytest.mark.parametrize("strategy", [s for _, s in TO_CONTROLLER], ids=[n for n, _ in TO_CONTROLLER])
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_osken_reads_what_the_switch_sends(strategy: st.SearchStrategy, data: st.DataObject) -> None:
    ours = data.draw(strategy)
    assert K.from_osken(K.parse(ours.encode())) == ours


@pytest.mark.parametrize("strategy", [s for _, s in TO_SWITCH], ids=[n for n, _ in TO_SWITCH])
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_the_switch_reads_what_osken_sends(strategy: st.SearchStrategy, data: st.DataObject) -> None:
    ours = data.draw(strategy)
    theirs = K.to_osken(ours)
    assert K.from_osken(theirs) == ours  # the os-ken message says what ours says
    wire = K.serialize(theirs)
    assert M.decode_message(wire) == ours
    assert ours.encode() == wire


def test_osken_hello_is_a_bare_header_and_still_agrees_on_13() -> None:
    wire = K.serialize(p.OFPHello(K.DP, [p.OFPHelloElemVersionBitmap([1, 4])]))
    assert wire == bytes.fromhex("0400000800000000")  # os-ken sends no elements
    conn = Connection()
    assert conn.receive_data(wire) == [Negotiated(4)]
    ours = K.parse(conn.data_to_send())
    assert [e.versions for e in ours.elements] == [[4]]


def _tester_messages() -> list[tuple[str, dict]]:
    out = []
    for path in sorted(glob.glob(os.path.join(OSKEN_DIR, "tests/switch/of13/**/*.json"),
                                 recursive=True)):
        with open(path) as f:
            cases = json.load(f)
        for case in cases[1:]:
            out += [(os.path.basename(path), pre) for pre in case["prerequisite"]]
    return out


def test_every_message_of_the_switch_tester_is_read_checked_and_echoed() -> None:
    messages = _tester_messages()
    kinds = set()
    for name, jsondict in messages:
        theirs = ofproto_parser.ofp_msg_from_jsondict(K.DP, jsondict)
        wire = K.serialize(theirs)
        ours = M.decode_message(wire)
        kinds.add(type(ours))
        assert ours == K.from_osken(theirs), name
        assert ours.encode() == wire, name
        if isinstance(ours, M.FlowMod):
            assert check_match(ours.match) is None, (name, str(ours.match))
            for inst in ours.instructions:
                for action in getattr(inst, "actions", ()):
                    if isinstance(action, A.SetField):
                        assert check_set_field(action) is None, (name, action)
            # a flow-stats entry built from the installed flow echoes it as the tester reads it
            stats = MP.FlowStats(ours.table_id, 0, 0, ours.priority, ours.idle_timeout,
                                 ours.hard_timeout, ours.flags, ours.cookie, 0, 0, ours.match,
                                 ours.instructions)
            (entry,) = K.parse(M.MultipartReply(MP.FlowStatsReply((stats,))).encode()).body
            assert str(entry.match) == str(theirs.match), name
            assert str(entry.instructions) == str(theirs.instructions), name
    assert len(messages) > 1400 and kinds == {M.FlowMod, M.GroupMod, M.MeterMod}


def test_a_flow_mod_with_many_masked_fields_and_every_instruction() -> None:
    match = p.OFPMatch(
        in_port=7, metadata=(0x1234, 0xFFFF), eth_dst=("02:00:00:00:00:00", "ff:ff:ff:00:00:00"),
        eth_src="02:00:00:00:00:01", eth_type=0x86DD, vlan_vid=(0x1000 | 5, 0x1FFF), vlan_pcp=3,
        ip_dscp=46, ip_ecn=1, ip_proto=58, ipv6_src=("2001:db8::", "ffff:ffff::"),
        ipv6_dst=("2001:db8:0:1::", "ffff:ffff:ffff:ffff::"), ipv6_flabel=(0x12345, 0xFFFFF),
        icmpv6_type=135, icmpv6_code=0, ipv6_nd_target="2001:db8::2",
        ipv6_nd_sll="02:00:00:00:00:02", ipv6_exthdr=(0x40, 0x1FF), tunnel_id=(9, 0xFF))
    actions = [p.OFPActionOutput(3, 128), p.OFPActionCopyTtlOut(), p.OFPActionCopyTtlIn(),
               p.OFPActionSetMplsTtl(9), p.OFPActionDecMplsTtl(), p.OFPActionPushVlan(0x88A8),
               p.OFPActionPopVlan(), p.OFPActionPushMpls(0x8847), p.OFPActionPopMpls(0x0800),
               p.OFPActionSetQueue(2), p.OFPActionGroup(4), p.OFPActionSetNwTtl(30),
               p.OFPActionDecNwTtl(), p.OFPActionSetField(ipv4_dst="10.0.0.9"),
               p.OFPActionPushPbb(0x88E7), p.OFPActionPopPbb()]
    instructions = [p.OFPInstructionMeter(5), p.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, actions),
                    p.OFPInstructionActions(ofp.OFPIT_CLEAR_ACTIONS, []),
                    p.OFPInstructionActions(ofp.OFPIT_WRITE_ACTIONS, [p.OFPActionGroup(8)]),
                    p.OFPInstructionWriteMetadata(0xAB, 0xFF), p.OFPInstructionGotoTable(3)]
    theirs = p.OFPFlowMod(K.DP, cookie=0xC0FFEE, cookie_mask=0xFFFF, table_id=1,
                          command=ofp.OFPFC_MODIFY_STRICT, idle_timeout=10, hard_timeout=20,
                          priority=0x4000, flags=ofp.OFPFF_SEND_FLOW_REM, match=match,
                          instructions=instructions)
    theirs.set_xid(0xDEAD)
    wire = K.serialize(theirs)
    ours = M.decode_message(wire)
    assert isinstance(ours, M.FlowMod) and ours.xid == 0xDEAD and ours.encode() == wire
    assert (ours.cookie, ours.cookie_mask, ours.table_id, ours.command, ours.idle_timeout,
            ours.hard_timeout, ours.priority, ours.flags) == (0xC0FFEE, 0xFFFF, 1, 2, 10, 20,
                                                              0x4000, 1)
    assert [t.field for t in ours.match] == [
        OxmField.IN_PORT, OxmField.METADATA, OxmField.ETH_DST, OxmField.ETH_SRC, OxmField.ETH_TYPE,
        OxmField.VLAN_VID, OxmField.VLAN_PCP, OxmField.IP_DSCP, OxmField.IP_ECN,
        OxmField.IP_PROTO, OxmField.IPV6_SRC, OxmField.IPV6_DST, OxmField.IPV6_FLABEL,
        OxmField.ICMPV6_TYPE, OxmField.ICMPV6_CODE, OxmField.IPV6_ND_TARGET, OxmField.IPV6_ND_SLL,
        OxmField.TUNNEL_ID, OxmField.IPV6_EXTHDR]  # os-ken's order: by field number, then its own
    eth_dst = ours.match.get(OxmField.ETH_DST)
    assert eth_dst.value == bytes.fromhex("020000000000") and eth_dst.mask == bytes.fromhex("ffffff000000")
    assert ours.match.get(OxmField.VLAN_VID).int_value == 0x1005
    assert ours.match.get(OxmField.IPV6_FLABEL).int_mask == 0xFFFFF
    assert ours.match.get(OxmField.IPV6_ND_TARGET).value == bytes.fromhex("20010db8" + "0" * 22 + "02")
    assert check_match(ours.match) is None
    assert [type(i) for i in ours.instructions] == [I.Meter, I.ApplyActions, I.ClearActions,
                                                    I.WriteActions, I.WriteMetadata, I.GotoTable]
    assert ours.instructions[1].actions == (
        A.Output(3, 128), A.CopyTtlOut(), A.CopyTtlIn(), A.SetMplsTtl(9), A.DecMplsTtl(),
        A.PushVlan(0x88A8), A.PopVlan(), A.PushMpls(0x8847), A.PopMpls(0x0800), A.SetQueue(2),
        A.Group(4), A.SetNwTtl(30), A.DecNwTtl(), A.SetField(ours.instructions[1].actions[13].field),
        A.PushPbb(0x88E7), A.PopPbb())
    assert ours.instructions[1].actions[13].field.value == bytes([10, 0, 0, 9])
    assert ours.instructions[4] == I.WriteMetadata(0xAB, 0xFF)
    again = K.parse(ours.encode())
    assert str(again.match) == str(match) and str(again.instructions) == str(theirs.instructions)


def test_groups_with_buckets_and_meters_with_bands() -> None:
    select = p.OFPGroupMod(K.DP, ofp.OFPGC_ADD, ofp.OFPGT_SELECT, 7, [
        p.OFPBucket(weight=60, actions=[p.OFPActionOutput(1)]),
        p.OFPBucket(weight=40, actions=[p.OFPActionSetField(eth_dst="02:00:00:00:00:09"),
                                        p.OFPActionOutput(2)])])
    ours = M.decode_message(K.serialize(select))
    assert isinstance(ours, M.GroupMod) and (ours.command, ours.group_type, ours.group_id) == (0, 1, 7)
    assert [b.weight for b in ours.buckets] == [60, 40]
    assert ours.buckets[1].actions[1] == A.Output(2)
    failover = p.OFPGroupMod(K.DP, ofp.OFPGC_MODIFY, ofp.OFPGT_FF, 8, [
        p.OFPBucket(watch_port=1, actions=[p.OFPActionOutput(1)]),
        p.OFPBucket(watch_port=2, watch_group=3, actions=[p.OFPActionGroup(3)])])
    ours = M.decode_message(K.serialize(failover))
    assert [(b.watch_port, b.watch_group) for b in ours.buckets] == [(1, ofp.OFPG_ANY), (2, 3)]
    meter = p.OFPMeterMod(K.DP, ofp.OFPMC_ADD, ofp.OFPMF_KBPS | ofp.OFPMF_BURST | ofp.OFPMF_STATS, 3,
                          [p.OFPMeterBandDrop(1000, 100), p.OFPMeterBandDscpRemark(500, 50, 2)])
    ours = M.decode_message(K.serialize(meter))
    assert isinstance(ours, M.MeterMod) and (ours.command, ours.flags, ours.meter_id) == (0, 0b1101, 3)
    assert ours.bands == (DropBand(1000, 100), DscpRemarkBand(500, 50, 2))
    # and the switch's meter-config reply, as os-ken reads it
    reply = M.MultipartReply(MP.MeterConfigReply((MP.MeterConfig(ours.flags, 3, ours.bands),)))
    (config,) = K.parse(reply.encode()).body
    assert (config.flags, config.meter_id) == (0b1101, 3)
    assert [(b.rate, b.burst_size) for b in config.bands] == [(1000, 100), (500, 50)]


def test_multipart_requests_built_with_osken() -> None:
    flows = p.OFPFlowStatsRequest(K.DP, 0, 1, ofp.OFPP_ANY, ofp.OFPG_ANY, 0x10, 0xF0,
                                  p.OFPMatch(eth_type=0x0800, ipv4_dst=("10.1.0.0", "255.255.0.0")))
    ours = M.decode_message(K.serialize(flows))
    assert isinstance(ours.body, MP.FlowStatsRequest)
    assert (ours.body.table_id, ours.body.cookie, ours.body.cookie_mask) == (1, 0x10, 0xF0)
    assert ours.body.match.get(OxmField.IPV4_DST).mask == b"\xff\xff\x00\x00"
    ports = M.decode_message(K.serialize(p.OFPPortStatsRequest(K.DP, 0, 3)))
    assert ours.flags == 0 and ports.body == MP.PortStatsRequest(3)
    features = p.OFPTableFeaturesStatsRequest(K.DP, 0, [p.OFPTableFeaturesStats(
        0, b"zero", 0xFF, 0xFF, 0, 1000, [
            p.OFPTableFeaturePropInstructions(ofp.OFPTFPT_INSTRUCTIONS,
                                              instruction_ids=[p.OFPInstructionId(1)]),
            p.OFPTableFeaturePropNextTables(ofp.OFPTFPT_NEXT_TABLES, table_ids=[1, 2]),
            p.OFPTableFeaturePropOxm(ofp.OFPTFPT_MATCH, oxm_ids=[p.OFPOxmId("in_port")])])])
    ours = M.decode_message(K.serialize(features))
    (table,) = ours.body.tables
    assert (table.name, table.max_entries) == (b"zero", 1000)
    assert [x.prop_type for x in table.properties] == [
        TableFeaturePropType.INSTRUCTIONS, TableFeaturePropType.NEXT_TABLES, TableFeaturePropType.MATCH]
    assert table.properties[1].table_ids == (1, 2)
    assert table.properties[2].oxm_ids[0].field == OxmField.IN_PORT


def test_osken_own_test_vectors_are_read_and_written_back_byte_for_byte() -> None:
    files = sorted(glob.glob(os.path.join(OSKEN_DIR, "tests/packet_data/of13/*.packet")))
    kinds = set()
    for path in files:
        with open(path, "rb") as f:
            wire = f.read()
        ours = M.decode_message(wire)
        assert not isinstance(ours, M.Malformed), (path, ours)
        assert ours.encode(wire[0]) == wire, path
        kinds.add(type(ours))
    assert len(files) > 100 and kinds == set(M.MESSAGE_CLASSES.values())
