"""os-ken's OpenFlow 1.3 library as the codec's peer: its messages built from ours
(:func:`to_osken`, for the controller-to-switch messages os-ken serializes) and ours read
back from its objects (:func:`from_osken`, for everything it parses or builds), so a test
compares the two codecs field by field.

os-ken is imported by the test modules through ``pytest.importorskip``; this module is only
imported after that.
"""

from __future__ import annotations

from typing import Any

from fata_openflow_switch import actions as A
from fata_openflow_switch import instructions as I
from fata_openflow_switch import messages as M
from fata_openflow_switch import multipart as MP
from fata_openflow_switch.buckets import Bucket
from fata_openflow_switch.meter_bands import DropBand, DscpRemarkBand, ExperimenterBand, MeterBand
from fata_openflow_switch.ofp_const import InstructionType
from fata_openflow_switch.oxm import Match, OxmTlv
from fata_openflow_switch.port_desc import Port
from fata_openflow_switch.queue_desc import PacketQueue, QueueProp
from fata_openflow_switch.table_features import (
    ACTION_PROPS,
    EXPERIMENTER_PROPS,
    INSTRUCTION_PROPS,
    NEXT_TABLES_PROPS,
    OxmId,
    TableFeatureProp,
    TableFeatures,
    TypeId,
)
from os_ken.lib import addrconv
from os_ken.ofproto import ofproto_parser
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as p


class Datapath:
    """What an os-ken message needs of a datapath to serialize or parse itself."""

    ofproto = ofp
    ofproto_parser = p
    id = 1


DP = Datapath()


def serialize(msg: Any) -> bytes:
    msg.serialize()
    return bytes(msg.buf)


def parse(data: bytes) -> Any:
    """os-ken's parse of one message (its ``ofproto_parser.msg``, as a controller reads)."""
    version, msg_type, length, xid = ofproto_parser.header(data)
    msg = ofproto_parser.msg(DP, version, msg_type, length, xid, data)
    if msg is None:
        raise AssertionError(f"os-ken has no parser for message type {msg_type}")
    return msg


# --- matches, actions, instructions ---------------------------------------------------------


def _tlv_to_user(tlv: OxmTlv) -> tuple[str, Any]:
    num = (tlv.oxm_class << 7) | tlv.field
    return ofp.oxm_to_user(num, tlv.value, tlv.mask)


def _tlv_from_user(name: str, user_value: Any) -> OxmTlv:
    num, value, mask = ofp.oxm_from_user(name, user_value)
    return OxmTlv(num & 0x7F, bytes(value), None if mask is None else bytes(mask), num >> 7)


def match_to_osken(match: Match) -> Any:
    return p.OFPMatch(_ordered_fields=[_tlv_to_user(t) for t in match])


def match_from_osken(match: Any) -> Match:
    return Match(tuple(_tlv_from_user(name, uv) for name, uv in match._fields2))


_SIMPLE_ACTIONS = {A.CopyTtlOut: "OFPActionCopyTtlOut", A.CopyTtlIn: "OFPActionCopyTtlIn",
                   A.DecMplsTtl: "OFPActionDecMplsTtl", A.PopVlan: "OFPActionPopVlan",
                   A.DecNwTtl: "OFPActionDecNwTtl", A.PopPbb: "OFPActionPopPbb"}
_ETHERTYPE_ACTIONS = {A.PushVlan: "OFPActionPushVlan", A.PushMpls: "OFPActionPushMpls",
                      A.PopMpls: "OFPActionPopMpls", A.PushPbb: "OFPActionPushPbb"}


def action_to_osken(a: A.Action) -> Any:
    if type(a) in _SIMPLE_ACTIONS:
        return getattr(p, _SIMPLE_ACTIONS[type(a)])()
    if type(a) in _ETHERTYPE_ACTIONS:
        return getattr(p, _ETHERTYPE_ACTIONS[type(a)])(a.ethertype)
    match a:
        case A.Output(port, max_len):
            return p.OFPActionOutput(port, max_len)
        case A.SetMplsTtl(ttl):
            return p.OFPActionSetMplsTtl(ttl)
        case A.SetNwTtl(ttl):
            return p.OFPActionSetNwTtl(ttl)
        case A.SetQueue(queue_id):
            return p.OFPActionSetQueue(queue_id)
        case A.Group(group_id):
            return p.OFPActionGroup(group_id)
        case A.SetField(tlv):
            name, value = _tlv_to_user(tlv)
            return p.OFPActionSetField(**{name: value})
        case A.ExperimenterAction(experimenter, data):
            return p.OFPActionExperimenterUnknown(experimenter, data)
    raise AssertionError(f"no os-ken action for {a!r}")


def action_from_osken(a: Any) -> A.Action:
    name = type(a).__name__
    for ours, theirs in _SIMPLE_ACTIONS.items():
        if name == theirs:
            return ours()
    for ours, theirs in _ETHERTYPE_ACTIONS.items():
        if name == theirs:
            return ours(a.ethertype)
    converters = {
        "OFPActionOutput": lambda: A.Output(a.port, a.max_len),
        "OFPActionSetMplsTtl": lambda: A.SetMplsTtl(a.mpls_ttl),
        "OFPActionSetNwTtl": lambda: A.SetNwTtl(a.nw_ttl),
        "OFPActionSetQueue": lambda: A.SetQueue(a.queue_id),
        "OFPActionGroup": lambda: A.Group(a.group_id),
        "OFPActionSetField": lambda: A.SetField(_tlv_from_user(a.key, a.value)),
        "OFPActionExperimenterUnknown": lambda: A.ExperimenterAction(a.experimenter, bytes(a.data)),
    }
    return converters[name]()


def instruction_to_osken(i: I.Instruction) -> Any:
    match i:
        case I.GotoTable(table_id):
            return p.OFPInstructionGotoTable(table_id)
        case I.WriteMetadata(metadata, mask):
            return p.OFPInstructionWriteMetadata(metadata, mask)
        case I.WriteActions(acts) | I.ApplyActions(acts):
            return p.OFPInstructionActions(i.instruction_type, [action_to_osken(a) for a in acts])
        case I.ClearActions():
            return p.OFPInstructionActions(InstructionType.CLEAR_ACTIONS, [])
        case I.Meter(meter_id):
            return p.OFPInstructionMeter(meter_id)
    raise AssertionError(f"no os-ken instruction for {i!r}")


def instruction_from_osken(i: Any) -> I.Instruction:
    name = type(i).__name__
    if name == "OFPInstructionActions":
        if i.type == InstructionType.CLEAR_ACTIONS:
            assert not i.actions
            return I.ClearActions()
        cls = {InstructionType.WRITE_ACTIONS: I.WriteActions,
               InstructionType.APPLY_ACTIONS: I.ApplyActions}[i.type]
        return cls(tuple(action_from_osken(a) for a in i.actions))
    return {
        "OFPInstructionGotoTable": lambda: I.GotoTable(i.table_id),
        "OFPInstructionWriteMetadata": lambda: I.WriteMetadata(i.metadata, i.metadata_mask),
        "OFPInstructionMeter": lambda: I.Meter(i.meter_id),
    }[name]()


def _actions(acts: Any) -> tuple[A.Action, ...]:
    return tuple(action_from_osken(a) for a in acts)


def _instructions(insts: Any) -> tuple[I.Instruction, ...]:
    return tuple(instruction_from_osken(i) for i in insts)


# --- buckets, bands, ports, queues, table features ------------------------------------------


def bucket_to_osken(b: Bucket) -> Any:
    return p.OFPBucket(b.weight, b.watch_port, b.watch_group, [action_to_osken(a) for a in b.actions])


def bucket_from_osken(b: Any) -> Bucket:
    return Bucket(_actions(b.actions), b.weight, b.watch_port, b.watch_group)


def band_to_osken(b: MeterBand) -> Any:
    match b:
        case DropBand(rate, burst):
            return p.OFPMeterBandDrop(rate, burst)
        case DscpRemarkBand(rate, burst, prec_level):
            return p.OFPMeterBandDscpRemark(rate, burst, prec_level)
        case ExperimenterBand(rate, burst, experimenter, b""):
            return p.OFPMeterBandExperimenter(rate, burst, experimenter)
    raise AssertionError(f"no os-ken band for {b!r}")


def band_from_osken(b: Any) -> MeterBand:
    return {
        "OFPMeterBandDrop": lambda: DropBand(b.rate, b.burst_size),
        "OFPMeterBandDscpRemark": lambda: DscpRemarkBand(b.rate, b.burst_size, b.prec_level),
        "OFPMeterBandExperimenter": lambda: ExperimenterBand(b.rate, b.burst_size, b.experimenter),
    }[type(b).__name__]()


def _mac(text: str) -> bytes:
    return addrconv.mac.text_to_bin(text)


def port_from_osken(port: Any) -> Port:
    return Port(port.port_no, _mac(port.hw_addr), port.name, port.config, port.state, port.curr,
                port.advertised, port.supported, port.peer, port.curr_speed, port.max_speed)


def queue_from_osken(q: Any) -> PacketQueue:
    def prop(x: Any) -> QueueProp:
        if type(x).__name__ == "OFPQueuePropExperimenter":
            return QueueProp(x.property, experimenter=x.experimenter, data=bytes(x.data or b""))
        return QueueProp(x.property, rate=x.rate)

    return PacketQueue(q.queue_id, q.port, tuple(prop(x) for x in q.properties))


def table_features_to_osken(t: TableFeatures) -> Any:
    def prop(x: TableFeatureProp) -> Any:
        if x.prop_type in INSTRUCTION_PROPS:
            return p.OFPTableFeaturePropInstructions(
                x.prop_type, instruction_ids=[p.OFPInstructionId(i.type) for i in x.ids])
        if x.prop_type in ACTION_PROPS:
            return p.OFPTableFeaturePropActions(
                x.prop_type, action_ids=[p.OFPActionId(i.type) for i in x.ids])
        if x.prop_type in NEXT_TABLES_PROPS:
            return p.OFPTableFeaturePropNextTables(x.prop_type, table_ids=list(x.table_ids))
        if x.prop_type in EXPERIMENTER_PROPS:
            assert not x.data
            return p.OFPTableFeaturePropExperimenter(x.prop_type, experimenter=x.experimenter,
                                                     exp_type=x.exp_type, data=[])
        ids = []
        for o in x.oxm_ids:
            name, _ = ofp.oxm_to_user((o.oxm_class << 7) | o.field, None, None)
            ids.append(p.OFPOxmId(name, bool(o.header & 0x100), o.header & 0xFF))
        return p.OFPTableFeaturePropOxm(x.prop_type, oxm_ids=ids)

    return p.OFPTableFeaturesStats(t.table_id, t.name, t.metadata_match, t.metadata_write,
                                   t.config, t.max_entries, [prop(x) for x in t.properties])


def table_features_from_osken(t: Any) -> TableFeatures:
    def prop(x: Any) -> TableFeatureProp:
        name = type(x).__name__
        if name == "OFPTableFeaturePropInstructions":
            return TableFeatureProp(x.type, ids=tuple(TypeId(i.type) for i in x.instruction_ids))
        if name == "OFPTableFeaturePropActions":
            return TableFeatureProp(x.type, ids=tuple(TypeId(i.type) for i in x.action_ids))
        if name == "OFPTableFeaturePropNextTables":
            return TableFeatureProp(x.type, table_ids=tuple(x.table_ids))
        if name == "OFPTableFeaturePropExperimenter":
            assert not x.data
            return TableFeatureProp(x.type, experimenter=x.experimenter, exp_type=x.exp_type)
        ids = []
        for o in x.oxm_ids:
            num, _, _ = ofp.oxm_from_user(o.type, None)
            ids.append(OxmId((num >> 7) << 16 | (num & 0x7F) << 9 | int(o.hasmask) << 8 | o.length))
        return TableFeatureProp(x.type, oxm_ids=tuple(ids))

    name = t.name if isinstance(t.name, bytes) else t.name.encode()
    return TableFeatures(t.table_id, name, t.metadata_match, t.metadata_write, t.config,
                         t.max_entries, tuple(prop(x) for x in t.properties))


# --- multipart ------------------------------------------------------------------------------


def request_body_to_osken(body: MP.Body, flags: int) -> Any:
    """The os-ken multipart request carrying ``body`` (os-ken has one class per type)."""
    empty = {MP.DescRequest: p.OFPDescStatsRequest, MP.TableStatsRequest: p.OFPTableStatsRequest,
             MP.GroupDescRequest: p.OFPGroupDescStatsRequest,
             MP.GroupFeaturesRequest: p.OFPGroupFeaturesStatsRequest,
             MP.MeterFeaturesRequest: p.OFPMeterFeaturesStatsRequest,
             MP.PortDescRequest: p.OFPPortDescStatsRequest}
    if type(body) in empty:
        return empty[type(body)](DP, flags)
    match body:
        case MP.FlowStatsRequest() | MP.AggregateStatsRequest():
            cls = (p.OFPFlowStatsRequest if isinstance(body, MP.FlowStatsRequest)
                   else p.OFPAggregateStatsRequest)
            return cls(DP, flags, body.table_id, body.out_port, body.out_group, body.cookie,
                       body.cookie_mask, match_to_osken(body.match))
        case MP.PortStatsRequest(port_no):
            return p.OFPPortStatsRequest(DP, flags, port_no)
        case MP.QueueStatsRequest(port_no, queue_id):
            return p.OFPQueueStatsRequest(DP, flags, port_no, queue_id)
        case MP.GroupStatsRequest(group_id):
            return p.OFPGroupStatsRequest(DP, flags, group_id)
        case MP.MeterStatsRequest(meter_id):
            return p.OFPMeterStatsRequest(DP, flags, meter_id)
        case MP.MeterConfigRequest(meter_id):
            return p.OFPMeterConfigStatsRequest(DP, flags, meter_id)
        case MP.TableFeaturesRequest(tables):
            return p.OFPTableFeaturesStatsRequest(DP, flags, [table_features_to_osken(t)
                                                             for t in tables])
        case MP.ExperimenterMultipart(experimenter, exp_type, data):
            return p.OFPExperimenterStatsRequest(DP, flags, experimenter, exp_type, data)
    raise AssertionError(f"no os-ken request for {body!r}")


def request_body_from_osken(msg: Any) -> MP.Body:
    name = type(msg).__name__
    empty = {"OFPDescStatsRequest": MP.DescRequest, "OFPTableStatsRequest": MP.TableStatsRequest,
             "OFPGroupDescStatsRequest": MP.GroupDescRequest,
             "OFPGroupFeaturesStatsRequest": MP.GroupFeaturesRequest,
             "OFPMeterFeaturesStatsRequest": MP.MeterFeaturesRequest,
             "OFPPortDescStatsRequest": MP.PortDescRequest}
    if name in empty:
        return empty[name]()
    if name in ("OFPFlowStatsRequest", "OFPAggregateStatsRequest"):
        cls = MP.FlowStatsRequest if name == "OFPFlowStatsRequest" else MP.AggregateStatsRequest
        return cls(msg.table_id, msg.out_port, msg.out_group, msg.cookie, msg.cookie_mask,
                   match_from_osken(msg.match))
    return {
        "OFPPortStatsRequest": lambda: MP.PortStatsRequest(msg.port_no),
        "OFPQueueStatsRequest": lambda: MP.QueueStatsRequest(msg.port_no, msg.queue_id),
        "OFPGroupStatsRequest": lambda: MP.GroupStatsRequest(msg.group_id),
        "OFPMeterStatsRequest": lambda: MP.MeterStatsRequest(msg.meter_id),
        "OFPMeterConfigStatsRequest": lambda: MP.MeterConfigRequest(msg.meter_id),
        "OFPTableFeaturesStatsRequest": lambda: MP.TableFeaturesRequest(
            tuple(table_features_from_osken(t) for t in msg.body)),
        "OFPExperimenterStatsRequest": lambda: MP.ExperimenterMultipart(
            msg.experimenter, msg.exp_type, bytes(msg.data)),
    }[name]()


def _counters(cs: Any, packets: str, octets: str) -> tuple[MP.Counter, ...]:
    return tuple(MP.Counter(getattr(c, packets), getattr(c, octets)) for c in cs)


def reply_body_from_osken(msg: Any) -> MP.Body:
    body = msg.body
    return {
        "OFPDescStatsReply": lambda: MP.DescReply(body.mfr_desc, body.hw_desc, body.sw_desc,
                                                  body.serial_num, body.dp_desc),
        "OFPFlowStatsReply": lambda: MP.FlowStatsReply(tuple(
            MP.FlowStats(f.table_id, f.duration_sec, f.duration_nsec, f.priority, f.idle_timeout,
                         f.hard_timeout, f.flags, f.cookie, f.packet_count, f.byte_count,
                         match_from_osken(f.match), _instructions(f.instructions))
            for f in body)),
        "OFPAggregateStatsReply": lambda: MP.AggregateStatsReply(
            body.packet_count, body.byte_count, body.flow_count),
        "OFPTableStatsReply": lambda: MP.TableStatsReply(tuple(
            MP.TableStats(t.table_id, t.active_count, t.lookup_count, t.matched_count)
            for t in body)),
        "OFPPortStatsReply": lambda: MP.PortStatsReply(tuple(MP.PortStats(*s) for s in body)),
        "OFPQueueStatsReply": lambda: MP.QueueStatsReply(tuple(MP.QueueStats(*s) for s in body)),
        "OFPGroupStatsReply": lambda: MP.GroupStatsReply(tuple(
            MP.GroupStats(g.group_id, g.ref_count, g.packet_count, g.byte_count, g.duration_sec,
                          g.duration_nsec, _counters(g.bucket_stats, "packet_count", "byte_count"))
            for g in body)),
        "OFPGroupDescStatsReply": lambda: MP.GroupDescReply(tuple(
            MP.GroupDesc(g.type, g.group_id, tuple(bucket_from_osken(b) for b in g.buckets))
            for g in body)),
        "OFPGroupFeaturesStatsReply": lambda: MP.GroupFeaturesReply(
            body.types, body.capabilities, tuple(body.max_groups), tuple(body.actions)),
        "OFPMeterStatsReply": lambda: MP.MeterStatsReply(tuple(
            MP.MeterStats(m.meter_id, m.flow_count, m.packet_in_count, m.byte_in_count,
                          m.duration_sec, m.duration_nsec,
                          _counters(m.band_stats, "packet_band_count", "byte_band_count"))
            for m in body)),
        "OFPMeterConfigStatsReply": lambda: MP.MeterConfigReply(tuple(
            MP.MeterConfig(m.flags, m.meter_id, tuple(band_from_osken(b) for b in m.bands))
            for m in body)),
        "OFPMeterFeaturesStatsReply": lambda: MP.MeterFeaturesReply(*body[0]),
        "OFPTableFeaturesStatsReply": lambda: MP.TableFeaturesReply(tuple(
            table_features_from_osken(t) for t in body)),
        "OFPPortDescStatsReply": lambda: MP.PortDescReply(tuple(port_from_osken(x) for x in body)),
        "OFPExperimenterStatsReply": lambda: MP.ExperimenterMultipart(
            body.experimenter, body.exp_type, bytes(body.data)),
    }[type(msg).__name__]()


# --- messages -------------------------------------------------------------------------------


def to_osken(m: M.Message) -> Any:
    """The os-ken message for one of ours that a controller sends (os-ken serializes only
    those), with the same xid."""
    match m:
        case M.Hello(elements):
            msg = p.OFPHello(DP, [p.OFPHelloElemVersionBitmap(sorted(e.versions))
                                  for e in elements])
        case M.EchoRequest(data):
            msg = p.OFPEchoRequest(DP, data)
        case M.Experimenter(experimenter, exp_type, data):
            msg = p.OFPExperimenter(DP, experimenter, exp_type, data)
        case M.FeaturesRequest():
            msg = p.OFPFeaturesRequest(DP)
        case M.GetConfigRequest():
            msg = p.OFPGetConfigRequest(DP)
        case M.SetConfig(flags, miss_send_len):
            msg = p.OFPSetConfig(DP, flags, miss_send_len)
        case M.PacketOut(buffer_id, in_port, acts, data):
            msg = p.OFPPacketOut(DP, buffer_id, in_port, [action_to_osken(a) for a in acts],
                                 data or None)
        case M.FlowMod():
            msg = p.OFPFlowMod(DP, m.cookie, m.cookie_mask, m.table_id, m.command, m.idle_timeout,
                               m.hard_timeout, m.priority, m.buffer_id, m.out_port, m.out_group,
                               m.flags, match_to_osken(m.match),
                               [instruction_to_osken(i) for i in m.instructions])
        case M.GroupMod(command, group_type, group_id, buckets):
            msg = p.OFPGroupMod(DP, command, group_type, group_id,
                                [bucket_to_osken(b) for b in buckets])
        case M.PortMod(port_no, hw_addr, config, mask, advertise):
            msg = p.OFPPortMod(DP, port_no, addrconv.mac.bin_to_text(hw_addr), config, mask,
                               advertise)
        case M.TableMod(table_id, config):
            msg = p.OFPTableMod(DP, table_id, config)
        case M.MultipartRequest(body, flags):
            msg = request_body_to_osken(body, flags)
        case M.BarrierRequest():
            msg = p.OFPBarrierRequest(DP)
        case M.QueueGetConfigRequest(port):
            msg = p.OFPQueueGetConfigRequest(DP, port)
        case M.RoleRequest(role, generation_id):
            msg = p.OFPRoleRequest(DP, role, generation_id)
        case M.GetAsyncRequest():
            msg = p.OFPGetAsyncRequest(DP)
        case M.SetAsync(pin, ps, fr):
            msg = p.OFPSetAsync(DP, list(pin), list(ps), list(fr))
        case M.MeterMod(command, flags, meter_id, bands):
            msg = p.OFPMeterMod(DP, command, flags, meter_id, [band_to_osken(b) for b in bands])
        case _:
            raise AssertionError(f"os-ken does not send {type(m).__name__}")
    msg.set_xid(m.xid)
    return msg


CONTROLLER_TO_SWITCH = (
    M.EchoRequest, M.Experimenter, M.FeaturesRequest, M.GetConfigRequest, M.SetConfig,
    M.PacketOut, M.FlowMod, M.GroupMod, M.PortMod, M.TableMod, M.MultipartRequest,
    M.BarrierRequest, M.QueueGetConfigRequest, M.RoleRequest, M.GetAsyncRequest, M.SetAsync,
    M.MeterMod)
"""Our messages :func:`to_osken` builds, which os-ken serializes (its HELLO is a bare header
whatever its elements, so HELLO is tested on its own)."""

SWITCH_TO_CONTROLLER = (
    M.Hello, M.ErrorMsg, M.EchoRequest, M.EchoReply, M.Experimenter, M.FeaturesReply,
    M.GetConfigReply, M.PacketIn, M.FlowRemoved, M.PortStatus, M.FlowMod, M.MultipartReply,
    M.BarrierReply, M.QueueGetConfigReply, M.RoleReply, M.GetAsyncReply)
"""Our messages os-ken parses (a controller's view; os-ken also parses flow-mods)."""


def from_osken(msg: Any) -> M.Message:
    """Ours, field for field, from an os-ken message (parsed or built)."""
    name = type(msg).__name__
    x = {"xid": msg.xid or 0}
    if name.endswith("StatsRequest"):
        return M.MultipartRequest(request_body_from_osken(msg), msg.flags, **x)
    if name.endswith("StatsReply"):
        return M.MultipartReply(reply_body_from_osken(msg), msg.flags, **x)
    return {
        "OFPHello": lambda: M.Hello(tuple(M.VersionBitmap.of(e.versions) for e in msg.elements),
                                    **x),
        "OFPErrorMsg": lambda: (
            M.ErrorMsg(msg.type, msg.exp_type, bytes(msg.data), msg.experimenter, **x)
            if msg.type == 0xFFFF else M.ErrorMsg(msg.type, msg.code, bytes(msg.data), **x)),
        "OFPEchoRequest": lambda: M.EchoRequest(bytes(msg.data or b""), **x),
        "OFPEchoReply": lambda: M.EchoReply(bytes(msg.data or b""), **x),
        "OFPExperimenter": lambda: M.Experimenter(msg.experimenter, msg.exp_type,
                                                  bytes(msg.data or b""), **x),
        "OFPFeaturesRequest": lambda: M.FeaturesRequest(**x),
        "OFPSwitchFeatures": lambda: M.FeaturesReply(msg.datapath_id, msg.n_buffers, msg.n_tables,
                                                     msg.auxiliary_id, msg.capabilities, **x),
        "OFPGetConfigRequest": lambda: M.GetConfigRequest(**x),
        "OFPGetConfigReply": lambda: M.GetConfigReply(msg.flags, msg.miss_send_len, **x),
        "OFPSetConfig": lambda: M.SetConfig(msg.flags, msg.miss_send_len, **x),
        "OFPPacketIn": lambda: M.PacketIn(msg.buffer_id, msg.total_len, msg.reason, msg.table_id,
                                          msg.cookie, match_from_osken(msg.match),
                                          bytes(msg.data), **x),
        "OFPFlowRemoved": lambda: M.FlowRemoved(
            msg.cookie, msg.priority, msg.reason, msg.table_id, msg.duration_sec,
            msg.duration_nsec, msg.idle_timeout, msg.hard_timeout, msg.packet_count,
            msg.byte_count, match_from_osken(msg.match), **x),
        "OFPPortStatus": lambda: M.PortStatus(msg.reason, port_from_osken(msg.desc), **x),
        "OFPPacketOut": lambda: M.PacketOut(msg.buffer_id, msg.in_port, _actions(msg.actions),
                                            bytes(msg.data or b""), **x),
        "OFPFlowMod": lambda: M.FlowMod(
            msg.cookie, msg.cookie_mask, msg.table_id, msg.command, msg.idle_timeout,
            msg.hard_timeout, msg.priority, msg.buffer_id, msg.out_port, msg.out_group, msg.flags,
            match_from_osken(msg.match), _instructions(msg.instructions), **x),
        "OFPGroupMod": lambda: M.GroupMod(msg.command, msg.type, msg.group_id,
                                          tuple(bucket_from_osken(b) for b in msg.buckets), **x),
        "OFPPortMod": lambda: M.PortMod(msg.port_no, _mac(msg.hw_addr), msg.config, msg.mask,
                                        msg.advertise, **x),
        "OFPTableMod": lambda: M.TableMod(msg.table_id, msg.config, **x),
        "OFPBarrierRequest": lambda: M.BarrierRequest(**x),
        "OFPBarrierReply": lambda: M.BarrierReply(**x),
        "OFPQueueGetConfigRequest": lambda: M.QueueGetConfigRequest(msg.port, **x),
        "OFPQueueGetConfigReply": lambda: M.QueueGetConfigReply(
            msg.port, tuple(queue_from_osken(q) for q in msg.queues), **x),
        "OFPRoleRequest": lambda: M.RoleRequest(msg.role, msg.generation_id, **x),
        "OFPRoleReply": lambda: M.RoleReply(msg.role, msg.generation_id, **x),
        "OFPGetAsyncRequest": lambda: M.GetAsyncRequest(**x),
        "OFPGetAsyncReply": lambda: M.GetAsyncReply(tuple(msg.packet_in_mask),
                                                    tuple(msg.port_status_mask),
                                                    tuple(msg.flow_removed_mask), **x),
        "OFPSetAsync": lambda: M.SetAsync(tuple(msg.packet_in_mask), tuple(msg.port_status_mask),
                                          tuple(msg.flow_removed_mask), **x),
        "OFPMeterMod": lambda: M.MeterMod(msg.command, msg.flags, msg.meter_id,
                                          tuple(band_from_osken(b) for b in msg.bands), **x),
    }[name]()

