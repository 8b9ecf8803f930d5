"""The switch engine: controller messages through the codec's wire form, frames through
the pipeline, on a virtual clock."""

from __future__ import annotations

import struct

import pytest
from fata_openflow_switch import actions as A
from fata_openflow_switch import instructions as I
from fata_openflow_switch import messages as M
from fata_openflow_switch import multipart as MP
from fata_openflow_switch.buckets import Bucket
from fata_openflow_switch.meter_bands import DropBand, DscpRemarkBand, ExperimenterBand
from fata_openflow_switch.ofp_const import (
    OFP_NO_BUFFER,
    OFPCML_NO_BUFFER,
    OFPTT_ALL,
    BadActionCode,
    BadInstructionCode,
    BadRequestCode,
    ErrorType,
    FlowModCommand,
    FlowModFailedCode,
    FlowModFlags,
    FlowRemovedReason,
    GroupModCommand,
    GroupModFailedCode,
    GroupType,
    MeterFlags,
    MeterModFailedCode,
    MultipartFlags,
    OxmField,
    PacketInReason,
    PortConfig,
    PortModFailedCode,
    PortNo,
    PortReason,
    PortState,
)
from fata_openflow_switch.oxm import Match, oxm
from fata_openflow_switch.packet import parse
from fata_openflow_switch.switch import Emitted, Switch, SwitchPort
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ._frames import arp_frame, ipv4_ok, mac, tcp4_frame, udp4_frame
from ._strategies import any_message

IPV4 = oxm("eth_type", 0x0800)


def make_switch(n_ports: int = 3, **kw) -> Switch:
    """A switch whose ports leave short frames short, so tests compare frames as built
    (the padding has its own test)."""
    ports = [SwitchPort(i, f"p{i}".encode(), mac(0x0A0000000000 + i)) for i in range(1, n_ports + 1)]
    return Switch(0xDA7A, ports, **{"min_frame": 0, **kw})


def send(sw: Switch, msg: M.Message, now: float = 0.0) -> Emitted:
    """``msg`` as the controller's bytes, decoded as the channel would hand it over."""
    return sw.handle(M.decode_message(msg.encode()), now)


def flow(sw: Switch, *fields, instructions=(), now: float = 0.0, **kw) -> Emitted:
    return send(sw, M.FlowMod(command=kw.pop("command", FlowModCommand.ADD),
                              match=Match(tuple(fields)), instructions=tuple(instructions),
                              **kw), now)


def apply(*actions: A.Action) -> I.ApplyActions:
    return I.ApplyActions(tuple(actions))


def refused(emitted: Emitted, request: M.Message) -> tuple[int, int]:
    (err,) = emitted.messages
    assert isinstance(err, M.ErrorMsg) and err.xid == request.xid
    assert err.data == request.encode()[:64]
    return (err.type, err.code)


def test_features_config_echo_barrier_desc() -> None:
    sw = make_switch(n_tables=4, n_buffers=16)
    (f,) = send(sw, M.FeaturesRequest(xid=1)).messages
    assert (f.datapath_id, f.n_tables, f.n_buffers, f.xid) == (0xDA7A, 4, 16, 1)
    assert send(sw, M.SetConfig(0, 200)).messages == []
    assert send(sw, M.GetConfigRequest(xid=2)).messages == [M.GetConfigReply(0, 200, xid=2)]
    assert send(sw, M.EchoRequest(b"abc", xid=3)).messages == [M.EchoReply(b"abc", xid=3)]
    assert send(sw, M.BarrierRequest(xid=4)).messages == [M.BarrierReply(xid=4)]
    (d,) = send(sw, M.MultipartRequest(MP.DescRequest(), xid=5)).messages
    assert isinstance(d.body, MP.DescReply) and d.xid == 5
    (pd,) = send(sw, M.MultipartRequest(MP.PortDescRequest())).messages
    assert [(p.port_no, p.name, p.hw_addr) for p in pd.body.ports] == [
        (i, f"p{i}".encode(), mac(0x0A0000000000 + i)) for i in (1, 2, 3)]


def test_output_to_a_port_and_counters() -> None:
    sw = make_switch()
    flow(sw, IPV4, instructions=[apply(A.Output(2))])
    frame = tcp4_frame()
    out = sw.process(1, [frame, frame], 1.0)
    assert out.frames == {2: [frame, frame]} and out.messages == []
    assert (sw.ports[1].rx_packets, sw.ports[2].tx_packets, sw.ports[2].tx_bytes) == (
        2, 2, 2 * len(frame))
    assert sw.process(1, [arp_frame()], 1.0).frames == {}  # no match, no table-miss: dropped


def test_reserved_ports() -> None:
    sw = make_switch(4)
    flow(sw, oxm("in_port", 1), instructions=[apply(A.Output(PortNo.FLOOD))])
    flow(sw, oxm("in_port", 2), instructions=[apply(A.Output(PortNo.ALL))])
    flow(sw, oxm("in_port", 3), instructions=[apply(A.Output(PortNo.IN_PORT),
                                                    A.Output(3), A.Output(PortNo.LOCAL))])
    f = udp4_frame()
    assert sorted(sw.process(1, [f], 0).frames) == [2, 3, 4]
    assert sorted(sw.process(2, [f], 0).frames) == [1, 3, 4]
    # IN_PORT sends it back; output to the in_port itself does not (5.12)
    assert sw.process(3, [f], 0).frames == {3: [f], PortNo.LOCAL: [f]}


def test_table_miss_packet_in_full_frame_and_buffered() -> None:
    sw = make_switch(n_buffers=4)
    flow(sw, priority=0, cookie=77,
         instructions=[apply(A.Output(PortNo.CONTROLLER, OFPCML_NO_BUFFER))])
    frame = tcp4_frame(data=bytes(200))
    (pin,) = sw.process(2, [frame], 0).messages
    assert isinstance(pin, M.PacketIn)
    assert (pin.buffer_id, pin.total_len, pin.reason, pin.cookie, pin.data) == (
        OFP_NO_BUFFER, len(frame), PacketInReason.NO_MATCH, 77, frame)
    assert pin.match == Match((oxm("in_port", 2),))
    flow(sw, IPV4, priority=5, cookie=8, instructions=[apply(A.Output(PortNo.CONTROLLER, 64))])
    (pin,) = sw.process(2, [frame], 0).messages
    assert pin.reason == PacketInReason.ACTION and pin.data == frame[:64]
    assert pin.total_len == len(frame) and pin.buffer_id != OFP_NO_BUFFER
    # the controller releases the buffered packet with a packet-out
    po = M.PacketOut(pin.buffer_id, 2, (A.Output(3),), xid=9)
    assert send(sw, po).frames == {3: [frame]}
    assert refused(send(sw, po), po) == (ErrorType.BAD_REQUEST, BadRequestCode.BUFFER_UNKNOWN)


def test_flow_mod_with_a_buffer_id_runs_the_buffered_packet() -> None:
    sw = make_switch()
    flow(sw, priority=0, instructions=[apply(A.Output(PortNo.CONTROLLER, 32))])
    frame = tcp4_frame(data=bytes(100))
    (pin,) = sw.process(1, [frame], 0).messages
    out = flow(sw, IPV4, priority=9, buffer_id=pin.buffer_id,
               instructions=[apply(A.Output(3))])
    assert out.frames == {3: [frame]}
    bad = M.FlowMod(buffer_id=12345, match=Match((IPV4,)), xid=3)
    assert refused(send(sw, bad), bad) == (ErrorType.BAD_REQUEST, BadRequestCode.BUFFER_UNKNOWN)


def test_packet_out_with_data_and_to_the_tables() -> None:
    sw = make_switch()
    flow(sw, oxm("in_port", 2), instructions=[apply(A.Output(1))])
    frame = arp_frame()
    assert send(sw, M.PacketOut(OFP_NO_BUFFER, PortNo.CONTROLLER,
                                (A.Output(2), A.Output(3)), frame)).frames == {2: [frame],
                                                                               3: [frame]}
    assert send(sw, M.PacketOut(OFP_NO_BUFFER, 2, (A.Output(PortNo.TABLE),),
                                frame)).frames == {1: [frame]}
    bad_port = M.PacketOut(OFP_NO_BUFFER, 99, (A.Output(1),), frame, xid=5)
    assert refused(send(sw, bad_port), bad_port) == (ErrorType.BAD_REQUEST,
                                                     BadRequestCode.BAD_PORT)
    (pin,) = send(sw, M.PacketOut(OFP_NO_BUFFER, 1, (A.Output(PortNo.CONTROLLER,
                                                              OFPCML_NO_BUFFER),), frame)).messages
    assert (pin.reason, pin.cookie, pin.data) == (PacketInReason.ACTION, (1 << 64) - 1, frame)


def test_pipeline_goto_write_metadata_and_action_set() -> None:
    sw = make_switch(n_tables=3)
    flow(sw, IPV4, table_id=0, instructions=[
        I.GotoTable(2), I.WriteMetadata(0xAB00, 0xFF00),
        I.WriteActions((A.Output(3), A.SetField(oxm("ipv4_dst", 0xC0A80001)))),
    ])
    flow(sw, oxm("metadata", 0xAB00, 0xFF00), table_id=2, instructions=[
        apply(A.SetField(oxm("eth_dst", 0x0600000000FF))),
        I.WriteActions((A.Output(2),)),  # replaces output 3 in the action set
    ])
    out = sw.process(1, [tcp4_frame()], 0)
    (sent,) = out.frames[2]
    assert list(out.frames) == [2]
    f = parse(sent, 2).fields
    assert f[OxmField.ETH_DST] == 0x0600000000FF
    assert f[OxmField.IPV4_DST] == 0xC0A80001 and ipv4_ok(sent)  # checksums updated
    # without the metadata table 2 misses: nothing goes out, the action set is lost
    flow(sw, IPV4, table_id=0, instructions=[I.GotoTable(2), I.WriteActions((A.Output(3),))])
    assert sw.process(1, [tcp4_frame()], 0).frames == {}


def test_clear_actions_and_apply_before_write() -> None:
    sw = make_switch(n_tables=2)
    flow(sw, table_id=0, instructions=[I.WriteActions((A.Output(3),)), I.GotoTable(1)])
    flow(sw, table_id=1, instructions=[I.ClearActions(), apply(A.PushVlan(0x8100),
                                       A.SetField(oxm("vlan_vid", 0x1000 | 12)), A.Output(2))])
    (sent,) = sw.process(1, [udp4_frame()], 0).frames[2]
    assert struct.unpack_from("!HH", sent, 12) == (0x8100, 12)
    assert 3 not in sw.process(1, [udp4_frame()], 0).frames


@pytest.mark.parametrize(("instructions", "err"), [
    ([I.GotoTable(0)], (ErrorType.BAD_INSTRUCTION, BadInstructionCode.BAD_TABLE_ID)),
    ([I.GotoTable(4)], (ErrorType.BAD_INSTRUCTION, BadInstructionCode.BAD_TABLE_ID)),
    ([I.Meter(1)], (ErrorType.METER_MOD_FAILED, MeterModFailedCode.UNKNOWN_METER)),
    ([I.ExperimenterInstruction(0x2320)],
     (ErrorType.BAD_INSTRUCTION, BadInstructionCode.BAD_EXPERIMENTER)),
    ([apply(), apply()], (ErrorType.BAD_INSTRUCTION, BadInstructionCode.UNSUP_INST)),
    ([apply(A.Output(9))], (ErrorType.BAD_ACTION, BadActionCode.BAD_OUT_PORT)),
    ([apply(A.Output(PortNo.TABLE))], (ErrorType.BAD_ACTION, BadActionCode.BAD_OUT_PORT)),
    ([apply(A.Group(1))], (ErrorType.BAD_ACTION, BadActionCode.BAD_OUT_GROUP)),
    ([apply(A.SetQueue(1))], (ErrorType.BAD_ACTION, BadActionCode.BAD_QUEUE)),
    ([apply(A.PushMpls(0x0800))], (ErrorType.BAD_ACTION, BadActionCode.BAD_ARGUMENT)),
    ([apply(A.PushPbb(0x8100))], (ErrorType.BAD_ACTION, BadActionCode.BAD_ARGUMENT)),
    ([apply(A.PushVlan(0x0800))], (ErrorType.BAD_ACTION, BadActionCode.BAD_ARGUMENT)),
    ([apply(A.SetField(oxm("in_port", 1)))], (ErrorType.BAD_ACTION, BadActionCode.BAD_SET_TYPE)),
    ([apply(A.SetField(oxm("ipv6_exthdr", 1)))], (ErrorType.BAD_ACTION, BadActionCode.BAD_SET_TYPE)),
    ([I.WriteActions((A.ExperimenterAction(0x2320, bytes(8)),))],
     (ErrorType.BAD_ACTION, BadActionCode.BAD_EXPERIMENTER)),
], ids=lambda v: repr(v)[:60])
def test_bad_flow_mods_are_refused_with_the_right_error(instructions, err) -> None:
    sw = make_switch(n_tables=4)
    mod = M.FlowMod(table_id=1, match=Match((IPV4,)), instructions=tuple(instructions), xid=42)
    assert refused(send(sw, mod), mod) == err
    assert not any(t.entries for t in sw.tables.tables)


def test_a_delete_ignores_its_instructions_and_a_bad_command_comes_first() -> None:
    sw = make_switch()
    flow(sw, IPV4, instructions=[apply(A.Output(2))])
    out = flow(sw, command=FlowModCommand.DELETE, table_id=OFPTT_ALL,
               instructions=[apply(A.Output(99))])  # a port that does not exist: irrelevant
    assert out.messages == [] and not sw.tables.tables[0].entries
    bad = M.FlowMod(command=9, instructions=(apply(A.Output(99)),), xid=4)
    assert refused(send(sw, bad), bad) == (ErrorType.FLOW_MOD_FAILED,
                                           FlowModFailedCode.BAD_COMMAND)


def test_unimplemented_requests_get_errors_not_silence() -> None:
    sw = make_switch()
    for msg in (M.QueueGetConfigRequest(1, xid=2), M.RoleRequest(2, xid=3)):
        assert refused(send(sw, msg), msg) == (ErrorType.BAD_REQUEST, BadRequestCode.BAD_TYPE)
    q = M.MultipartRequest(MP.QueueStatsRequest(), xid=4)
    assert refused(send(sw, q), q) == (ErrorType.BAD_REQUEST, BadRequestCode.BAD_MULTIPART)
    malformed = M.decode_message(struct.pack("!BBHI", 4, 99, 8, 7))
    assert sw.handle(malformed, 0).messages == [malformed.error]


def test_flow_stats_echo_match_and_instructions_and_aggregate() -> None:
    sw = make_switch(n_tables=2)
    # TLVs in an unusual order, a masked field: echoed as sent
    match = Match((oxm("ipv4_src", 0x0A000000, 0xFF000000), oxm("eth_type", 0x0800)))
    ins = (apply(A.Output(2)), I.WriteMetadata(5, 0xFF))
    send(sw, M.FlowMod(cookie=3, priority=7, idle_timeout=30, match=match, instructions=ins,
                       flags=FlowModFlags.SEND_FLOW_REM), 10)
    sw.process(1, [tcp4_frame()] * 3, 11)
    (reply,) = send(sw, M.MultipartRequest(MP.FlowStatsRequest(), xid=8), 12.25).messages
    (fs,) = reply.body.flows
    assert (fs.match, fs.instructions, fs.cookie, fs.priority, fs.flags) == (
        match, ins, 3, 7, FlowModFlags.SEND_FLOW_REM)
    assert (fs.packet_count, fs.duration_sec, fs.duration_nsec) == (3, 2, 250_000_000)
    assert fs.match.encode() == match.encode()
    (agg,) = send(sw, M.MultipartRequest(MP.AggregateStatsRequest())).messages
    assert (agg.body.packet_count, agg.body.flow_count) == (3, 1)
    (none,) = send(sw, M.MultipartRequest(MP.FlowStatsRequest(table_id=1))).messages
    assert none.body.flows == ()
    bad = M.MultipartRequest(MP.FlowStatsRequest(table_id=9), xid=1)
    assert refused(send(sw, bad), bad) == (ErrorType.BAD_REQUEST, BadRequestCode.BAD_TABLE_ID)
    (tables,) = send(sw, M.MultipartRequest(MP.TableStatsRequest())).messages
    assert [(t.active_count, t.lookup_count, t.matched_count) for t in tables.body.tables] == [
        (1, 3, 3), (0, 0, 0)]


def test_large_flow_stats_are_split_with_reply_more() -> None:
    sw = make_switch()
    for i in range(1200):
        flow(sw, IPV4, oxm("ipv4_dst", i), cookie=i, instructions=[apply(A.Output(2))])
    replies = send(sw, M.MultipartRequest(MP.FlowStatsRequest(), xid=3)).messages
    assert len(replies) > 1
    assert [r.flags for r in replies] == [MultipartFlags.MORE] * (len(replies) - 1) + [0]
    assert sorted(f.cookie for r in replies for f in r.body.flows) == list(range(1200))
    assert all(len(r.encode()) <= 0xFFFF for r in replies)


def test_port_stats_and_port_mod() -> None:
    sw = make_switch()
    flow(sw, instructions=[apply(A.Output(PortNo.FLOOD))])
    sw.process(1, [udp4_frame()], 0)
    (ps,) = send(sw, M.MultipartRequest(MP.PortStatsRequest(2))).messages
    (p2,) = ps.body.ports
    assert (p2.port_no, p2.tx_packets, p2.rx_packets) == (2, 1, 0)
    pm = M.PortMod(2, mac(0x0A0000000002), PortConfig.NO_FWD, PortConfig.NO_FWD)
    (status,) = send(sw, pm).messages  # the change is reported, as any port change is
    assert isinstance(status, M.PortStatus) and status.reason == PortReason.MODIFY
    assert status.desc.port_no == 2 and status.desc.config == PortConfig.NO_FWD
    assert send(sw, pm).messages == []  # no change, no report
    assert sorted(sw.process(1, [udp4_frame()], 0).frames) == [3]
    assert sw.ports[2].tx_dropped == 1
    wrong = M.PortMod(2, mac(1), 0, PortConfig.NO_FWD, xid=6)
    assert refused(send(sw, wrong), wrong) == (ErrorType.PORT_MOD_FAILED,
                                               PortModFailedCode.BAD_HW_ADDR)
    send(sw, M.PortMod(1, mac(0x0A0000000001), PortConfig.NO_RECV, PortConfig.NO_RECV))
    assert sw.process(1, [udp4_frame()], 0).frames == {} and sw.ports[1].rx_dropped == 1


def test_timeouts_and_flow_removed_through_on_timer() -> None:
    sw = make_switch()
    flow(sw, IPV4, idle_timeout=5, flags=FlowModFlags.SEND_FLOW_REM, cookie=1,
         instructions=[apply(A.Output(2))], now=100)
    assert sw.next_deadline() == 105
    sw.process(1, [tcp4_frame()], 103)
    assert sw.on_timer(105).messages == []  # idle since 103 only
    (rem,) = sw.on_timer(108).messages
    assert (rem.reason, rem.cookie, rem.packet_count) == (FlowRemovedReason.IDLE_TIMEOUT, 1, 1)
    assert sw.process(1, [tcp4_frame()], 109).frames == {}


def test_delete_sends_flow_removed_and_invalidates_the_cache() -> None:
    sw = make_switch()
    flow(sw, priority=1, instructions=[apply(A.Output(3))])
    flow(sw, IPV4, priority=2, cookie=5, flags=FlowModFlags.SEND_FLOW_REM,
         instructions=[apply(A.Output(2))])
    assert list(sw.process(1, [tcp4_frame()], 0).frames) == [2]
    out = flow(sw, table_id=OFPTT_ALL, command=FlowModCommand.DELETE, cookie=5,
               cookie_mask=0xFF)
    (rem,) = out.messages
    assert (rem.reason, rem.cookie) == (FlowRemovedReason.DELETE, 5)
    assert list(sw.process(1, [tcp4_frame()], 0).frames) == [3]
    flow(sw, IPV4, priority=3, instructions=[apply(A.Output(2))])
    assert list(sw.process(1, [tcp4_frame()], 0).frames) == [2]


def test_short_frames_are_padded_to_the_wire_minimum() -> None:
    sw = make_switch(min_frame=60)
    flow(sw, instructions=[apply(A.Output(2), A.Output(PortNo.CONTROLLER, OFPCML_NO_BUFFER))])
    out = sw.process(1, [arp_frame()], 0)
    padded = arp_frame() + bytes(60 - len(arp_frame()))
    assert out.frames[2] == [padded]
    assert (out.messages[0].data, out.messages[0].total_len) == (padded, 60)
    assert sw.ports[2].tx_bytes == 60


def test_dec_ttl_to_zero_is_a_packet_in_invalid_ttl() -> None:
    sw = make_switch()
    flow(sw, IPV4, instructions=[apply(A.DecNwTtl(), A.Output(2))])
    out = sw.process(1, [tcp4_frame(ttl=1)], 0)
    assert out.frames == {}
    (pin,) = out.messages
    assert pin.reason == PacketInReason.INVALID_TTL
    (sent,) = sw.process(1, [tcp4_frame(ttl=9)], 0).frames[2]
    assert sent == tcp4_frame(ttl=8)


def test_tunnel_id_set_in_one_table_is_matched_in_the_next_and_reported() -> None:
    sw = make_switch(n_tables=2)
    flow(sw, table_id=0, instructions=[apply(A.SetField(oxm("tunnel_id", 99))), I.GotoTable(1)])
    flow(sw, oxm("tunnel_id", 99), table_id=1,
         instructions=[apply(A.Output(PortNo.CONTROLLER, OFPCML_NO_BUFFER))])
    (pin,) = sw.process(1, [udp4_frame()], 0).messages
    assert pin.match == Match((oxm("in_port", 1), oxm("tunnel_id", 99)))
    assert pin.table_id == 1


def test_mpls_push_set_pop_through_the_switch() -> None:
    sw = make_switch(n_tables=2)
    flow(sw, IPV4, table_id=0, instructions=[
        apply(A.PushMpls(0x8847), A.SetField(oxm("mpls_label", 1000)), A.DecMplsTtl()),
        I.GotoTable(1)])
    flow(sw, oxm("eth_type", 0x8847), oxm("mpls_label", 1000), table_id=1,
         instructions=[apply(A.Output(2), A.PopMpls(0x0800), A.Output(3))])
    frame = tcp4_frame(ttl=30)
    out = sw.process(1, [frame], 0)
    (labelled,) = out.frames[2]
    assert struct.unpack_from("!H", labelled, 12)[0] == 0x8847
    assert struct.unpack_from("!I", labelled, 14)[0] == (1000 << 12) | 0x100 | 29
    assert out.frames[3] == [frame]


def group(sw: Switch, group_id: int, group_type: int, *buckets: Bucket,
          command: int = GroupModCommand.ADD, now: float = 0.0) -> Emitted:
    return send(sw, M.GroupMod(command, group_type, group_id, tuple(buckets), xid=group_id),
                now)


def test_all_group_copies_to_every_bucket_with_counters_and_desc() -> None:
    sw = make_switch(4)
    buckets = (Bucket((A.Output(2),)), Bucket((A.SetField(oxm("eth_dst", 0xBB)), A.Output(3))))
    assert group(sw, 1, GroupType.ALL, *buckets).messages == []
    flow(sw, instructions=[apply(A.Group(1))])
    out = sw.process(1, [udp4_frame()] * 2, 0)
    assert out.frames[2] == [udp4_frame()] * 2
    assert parse(out.frames[3][0], 3).fields[OxmField.ETH_DST] == 0xBB
    (stats,) = send(sw, M.MultipartRequest(MP.GroupStatsRequest()), 2).messages
    (g,) = stats.body.groups
    assert (g.group_id, g.ref_count, g.packet_count, g.duration_sec) == (1, 1, 2, 2)
    assert [c.packet_count for c in g.bucket_stats] == [2, 2]
    (desc,) = send(sw, M.MultipartRequest(MP.GroupDescRequest())).messages
    assert desc.body.groups == (MP.GroupDesc(GroupType.ALL, 1, buckets),)


def test_select_group_keeps_a_flow_on_one_bucket_and_honours_weights() -> None:
    sw = make_switch(4)
    group(sw, 2, GroupType.SELECT, Bucket((A.Output(2),), weight=1),
          Bucket((A.Output(3),), weight=0), Bucket((A.Output(4),), weight=1))
    flow(sw, instructions=[apply(A.Group(2))])
    seen = set()
    for sport in range(40):
        frame = udp4_frame(sport=sport)
        (port,) = sw.process(1, [frame], 0).frames
        assert list(sw.process(1, [frame], 0).frames) == [port]  # the same flow, the same bucket
        seen.add(port)
    assert seen == {2, 4}


def test_indirect_and_fast_failover_groups() -> None:
    sw = make_switch(4)
    two = M.GroupMod(GroupModCommand.ADD, GroupType.INDIRECT, 3,
                     (Bucket((A.Output(2),)), Bucket((A.Output(3),))), xid=3)
    assert refused(send(sw, two), two) == (ErrorType.GROUP_MOD_FAILED,
                                           GroupModFailedCode.INVALID_GROUP)
    group(sw, 3, GroupType.INDIRECT, Bucket((A.Output(4),)))
    group(sw, 4, GroupType.FF, Bucket((A.Output(2),), watch_port=2),
          Bucket((A.Group(3),), watch_group=3))
    flow(sw, instructions=[apply(A.Group(4))])
    assert list(sw.process(1, [udp4_frame()], 0).frames) == [2]
    send(sw, M.PortMod(2, mac(0x0A0000000002), PortConfig.PORT_DOWN, PortConfig.PORT_DOWN))
    assert list(sw.process(1, [udp4_frame()], 0).frames) == [4]  # failed over via group 3
    unwatched = M.GroupMod(GroupModCommand.ADD, GroupType.FF, 5, (Bucket((A.Output(2),)),), xid=5)
    assert refused(send(sw, unwatched), unwatched) == (ErrorType.GROUP_MOD_FAILED,
                                                       GroupModFailedCode.BAD_WATCH)


def test_a_link_going_down_is_reported_and_fast_failover_follows_it() -> None:
    sw = make_switch(4)
    group(sw, 4, GroupType.FF, Bucket((A.Output(2),), watch_port=2),
          Bucket((A.Output(3),), watch_port=3))
    flow(sw, instructions=[apply(A.Group(4))])
    assert list(sw.process(1, [udp4_frame()], 0).frames) == [2]
    (down,) = sw.link_changed(2, False).messages
    assert isinstance(down, M.PortStatus) and down.reason == PortReason.MODIFY
    assert down.desc.port_no == 2 and down.desc.state & PortState.LINK_DOWN
    assert sw.link_changed(2, False).messages == []  # already down: nothing to say
    assert list(sw.process(1, [udp4_frame()], 0).frames) == [3]
    (up,) = sw.link_changed(2, True).messages
    assert not up.desc.state & PortState.LINK_DOWN
    assert list(sw.process(1, [udp4_frame()], 0).frames) == [2]
    assert sw.link_changed(9, False).messages == []  # not a port of this switch
    (desc,) = send(sw, M.MultipartRequest(MP.PortDescRequest())).messages
    assert all(not p.state & PortState.LINK_DOWN for p in desc.body.ports)


def test_group_mod_errors_and_delete_removes_flows() -> None:
    sw = make_switch()
    group(sw, 1, GroupType.ALL, Bucket((A.Output(2),)))
    again = M.GroupMod(GroupModCommand.ADD, GroupType.ALL, 1, xid=9)
    assert refused(send(sw, again), again) == (ErrorType.GROUP_MOD_FAILED,
                                               GroupModFailedCode.GROUP_EXISTS)
    missing = M.GroupMod(GroupModCommand.MODIFY, GroupType.ALL, 7, xid=9)
    assert refused(send(sw, missing), missing) == (ErrorType.GROUP_MOD_FAILED,
                                                   GroupModFailedCode.UNKNOWN_GROUP)
    group(sw, 2, GroupType.ALL, Bucket((A.Group(1),)))
    loop = M.GroupMod(GroupModCommand.MODIFY, GroupType.ALL, 1, (Bucket((A.Group(2),)),), xid=9)
    assert refused(send(sw, loop), loop) == (ErrorType.GROUP_MOD_FAILED, GroupModFailedCode.LOOP)
    weighted = M.GroupMod(GroupModCommand.ADD, GroupType.ALL, 8, (Bucket(weight=3),), xid=9)
    assert refused(send(sw, weighted), weighted) == (ErrorType.GROUP_MOD_FAILED,
                                                     GroupModFailedCode.WEIGHT_UNSUPPORTED)
    bad_port = M.GroupMod(GroupModCommand.ADD, GroupType.ALL, 8, (Bucket((A.Output(99),)),), xid=9)
    assert refused(send(sw, bad_port), bad_port) == (ErrorType.BAD_ACTION,
                                                     BadActionCode.BAD_OUT_PORT)
    flow(sw, IPV4, cookie=1, flags=FlowModFlags.SEND_FLOW_REM,
         instructions=[I.WriteActions((A.Output(3), A.Group(2)))])
    flow(sw, cookie=2, priority=1, instructions=[apply(A.Output(3))])
    assert list(sw.process(1, [udp4_frame()], 0).frames) == [2]  # the group, not output 3
    (rem,) = group(sw, 1, GroupType.ALL, command=GroupModCommand.DELETE).messages
    assert (rem.cookie, rem.reason) == (1, FlowRemovedReason.GROUP_DELETE)
    assert sw.groups.groups == {}  # group 2 chained to 1 went with it
    assert list(sw.process(1, [udp4_frame()], 0).frames) == [3]


def meter(sw: Switch, meter_id: int, flags: int, *bands, command: int = 0,
          now: float = 0.0) -> Emitted:
    return send(sw, M.MeterMod(command, flags, meter_id, tuple(bands), xid=meter_id), now)


def test_pktps_drop_band_with_burst_on_the_virtual_clock() -> None:
    sw = make_switch()
    assert meter(sw, 1, MeterFlags.PKTPS | MeterFlags.BURST, DropBand(10, 5)).messages == []
    flow(sw, instructions=[I.Meter(1), apply(A.Output(2))])
    frame = udp4_frame()
    assert len(sw.process(1, [frame] * 8, 0.0).frames[2]) == 5  # the burst, then drops
    assert len(sw.process(1, [frame] * 8, 0.3).frames[2]) == 3  # 0.3 s at 10/s
    (stats,) = send(sw, M.MultipartRequest(MP.MeterStatsRequest()), 0.3).messages
    (m,) = stats.body.meters
    assert (m.meter_id, m.flow_count, m.packet_in_count) == (1, 1, 16)
    assert [c.packet_count for c in m.band_stats] == [8]


def test_kbps_dscp_remark_band() -> None:
    sw = make_switch()
    # 8 kb/s, no burst flag: one second's worth (1000 bytes) passes unmarked
    meter(sw, 2, MeterFlags.KBPS, DscpRemarkBand(8, prec_level=1))
    flow(sw, IPV4, instructions=[I.Meter(2), apply(A.Output(2))])
    frame = tcp4_frame(tos=10 << 2, data=bytes(400))  # AF11, 459 bytes
    sent = sw.process(1, [frame] * 3, 0.0).frames[2]
    dscps = [parse(f, 2).fields[OxmField.IP_DSCP] for f in sent]
    assert dscps == [10, 10, 12]  # the third exceeds the band: AF11 becomes AF12
    assert all(ipv4_ok(f) for f in sent)


def test_meter_mod_errors_config_and_delete() -> None:
    sw = make_switch()
    cases = [
        (M.MeterMod(0, MeterFlags.KBPS | MeterFlags.PKTPS, 1, (DropBand(1),), xid=1),
         MeterModFailedCode.BAD_FLAGS),
        (M.MeterMod(0, MeterFlags.KBPS, 0, (DropBand(1),), xid=1),
         MeterModFailedCode.INVALID_METER),
        (M.MeterMod(0, MeterFlags.KBPS, 1, (DropBand(0),), xid=1), MeterModFailedCode.BAD_RATE),
        (M.MeterMod(0, MeterFlags.KBPS | MeterFlags.BURST, 1, (DropBand(5),), xid=1),
         MeterModFailedCode.BAD_BURST),
        (M.MeterMod(0, MeterFlags.KBPS, 1, (ExperimenterBand(5, 0, 1),), xid=1),
         MeterModFailedCode.BAD_BAND),
        (M.MeterMod(1, MeterFlags.KBPS, 9, (DropBand(5),), xid=1),
         MeterModFailedCode.UNKNOWN_METER),
        (M.MeterMod(5, MeterFlags.KBPS, 9, (DropBand(5),), xid=1),
         MeterModFailedCode.BAD_COMMAND),
    ]
    for msg, code in cases:
        assert refused(send(sw, msg), msg) == (ErrorType.METER_MOD_FAILED, code), msg
    bands = (DropBand(100), DscpRemarkBand(50, prec_level=2))
    meter(sw, 3, MeterFlags.KBPS | MeterFlags.STATS, *bands)
    again = M.MeterMod(0, MeterFlags.KBPS, 3, (DropBand(5),), xid=3)
    assert refused(send(sw, again), again) == (ErrorType.METER_MOD_FAILED,
                                               MeterModFailedCode.METER_EXISTS)
    (config,) = send(sw, M.MultipartRequest(MP.MeterConfigRequest())).messages
    assert config.body.meters == (MP.MeterConfig(MeterFlags.KBPS | MeterFlags.STATS, 3, bands),)
    flow(sw, cookie=4, flags=FlowModFlags.SEND_FLOW_REM, instructions=[I.Meter(3)])
    (rem,) = meter(sw, 3, 0, command=2).messages  # delete: its flows go too
    assert rem.cookie == 4 and not sw.tables.tables[0].entries


# --- random flows and packets: the cache never changes an answer --------------------------

_OUT = st.sampled_from([1, 2, 3, PortNo.FLOOD, PortNo.IN_PORT])
_FIELD = st.sampled_from([
    oxm("ipv4_dst", 0x0A000002), oxm("ipv4_dst", 0x0A000000, 0xFFFFFF00), oxm("in_port", 1),
    oxm("in_port", 2), oxm("vlan_vid", 0x1000, 0x1000), oxm("vlan_vid", 0),
    oxm("eth_src", 0x020000000001), oxm("ip_dscp", 0),
])
_FLOW = st.tuples(st.lists(_FIELD, max_size=3, unique_by=lambda t: t.field),
                  st.integers(0, 4), st.lists(_OUT, max_size=2),
                  st.sampled_from([None, 0x0A0000FE]))
_PACKET = st.tuples(st.integers(1, 3), st.sampled_from([
    tcp4_frame(), tcp4_frame(dst=0x0A000005), tcp4_frame(vlan=(4, 1)), udp4_frame(),
    arp_frame()]))


def _install(sw: Switch, flows) -> None:
    for i, (fields, priority, outs, new_dst) in enumerate(flows):
        if any(f.field in (OxmField.IP_DSCP, OxmField.IPV4_DST) for f in fields):
            fields = [*fields, IPV4]
        acts = [A.Output(o) for o in outs]
        if new_dst is not None and IPV4 in fields:
            acts.insert(0, A.SetField(oxm("ipv4_dst", new_dst)))
        out = flow(sw, *fields, priority=priority, cookie=i, instructions=[apply(*acts)])
        assert out.messages == []


@settings(max_examples=200, deadline=None)
@given(st.lists(_FLOW, max_size=6), st.lists(_PACKET, min_size=1, max_size=12),
       st.integers(0, 11))
def test_the_cached_switch_forwards_as_an_uncached_one(flows, packets, change_at) -> None:
    cached, uncached = make_switch(), make_switch()
    _install(cached, flows)
    _install(uncached, flows)
    for i, (port, frame) in enumerate(packets):
        if i == change_at:  # a table change mid-stream must reach both
            for sw in (cached, uncached):
                flow(sw, oxm("in_port", port), priority=3, instructions=[apply(A.Output(3))])
        for t in uncached.tables.tables:
            t.cache.clear()
        assert cached.process(port, [frame], 0) == uncached.process(port, [frame], 0)


# --- whatever the controller sends, the switch answers and goes on ------------------------

_MESSAGES = any_message()


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_MESSAGES, min_size=1, max_size=4), st.lists(_PACKET, max_size=3))
def test_random_controller_messages_never_raise_and_replies_encode(msgs, packets) -> None:
    sw = make_switch(n_tables=4)
    for msg in msgs:
        decoded = M.decode_message(msg.encode())
        for m in sw.handle(decoded, 1.0).messages:
            m.encode()
        for port, frame in packets:
            for m in sw.process(port, [frame], 2.0).messages:
                m.encode()
