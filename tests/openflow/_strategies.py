"""Hypothesis strategies for every structure and message of the OpenFlow 1.3 codec.

Values range over what the wire can carry (whole u8/u16/u32/u64 ranges, every OXM field at
its size, masked where the field may be, experimenter payloads), kept small in count so a
message stays well under 64 KiB.  ``osken_safe=True`` narrows them to what os-ken's parser
represents without loss (no OXM of other classes, no experimenter IDs os-ken decodes as its
own extensions, no experimenter instructions, which it does not parse).
"""

from __future__ import annotations

from fata_openflow_switch import actions as A
from fata_openflow_switch import instructions as I
from fata_openflow_switch import messages as M
from fata_openflow_switch import multipart as MP
from fata_openflow_switch.buckets import Bucket
from fata_openflow_switch.meter_bands import DropBand, DscpRemarkBand, ExperimenterBand
from fata_openflow_switch.ofp_const import (
    HelloElemType,
    OxmClass,
    QueueProperty,
    TableFeaturePropType,
)
from fata_openflow_switch.oxm import FIELDS, FieldSpec, Match, OxmTlv
from fata_openflow_switch.port_desc import Port
from fata_openflow_switch.queue_desc import PacketQueue, QueueProp
from fata_openflow_switch.table_features import (
    ACTION_PROPS,
    EXPERIMENTER_PROPS,
    INSTRUCTION_PROPS,
    NEXT_TABLES_PROPS,
    OXM_PROPS,
    OxmId,
    TableFeatureProp,
    TableFeatures,
    TypeId,
)
from hypothesis import strategies as st

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
u64 = st.integers(0, 0xFFFFFFFFFFFFFFFF)
small_bytes = st.binary(max_size=24)
# os-ken decodes these experimenter IDs as its own extensions (Nicira, ONF, BSN...).
OSKEN_EXPERIMENTERS = frozenset({0x00002320, 0x4F4E4600, 0x005C16C7, 0x000026E1, 0x0000AA01})
experimenter_id = u32.filter(lambda e: e not in OSKEN_EXPERIMENTERS)


def aligned_bytes(header: int, max_size: int = 24) -> st.SearchStrategy[bytes]:
    """Bytes that bring a structure with a ``header``-byte fixed part to a multiple of 8."""
    return st.binary(max_size=max_size).map(lambda b: b + bytes(-(header + len(b)) % 8))


def field_value(spec: FieldSpec, valid: bool = True, masked: bool = True) -> st.SearchStrategy[OxmTlv]:
    """A TLV of ``spec``'s field; ``valid`` keeps value and mask within the field's bits and
    the value's bits inside the mask, as :func:`check_match` wants them; ``masked`` False
    never masks (a set-field)."""
    limit = spec.value_limit if valid else 1 << (8 * spec.size)

    def build(value: int, mask: int | None) -> OxmTlv:
        if mask is not None and valid:
            value &= mask
        raw_mask = None if mask is None else mask.to_bytes(spec.size, "big")
        return OxmTlv(spec.field, value.to_bytes(spec.size, "big"), raw_mask)

    maskable = masked and (spec.maskable or not valid)
    masks = st.none() | st.integers(0, limit - 1) if maskable else st.none()
    return st.builds(build, st.integers(0, limit - 1), masks)


any_field = st.sampled_from(sorted(FIELDS.values(), key=lambda s: s.field))
basic_tlv = any_field.flatmap(field_value)
unmasked_tlv = any_field.flatmap(lambda spec: field_value(spec, masked=False))
other_tlv = st.one_of(
    st.builds(lambda c, f, v: OxmTlv(f, v, None, c), st.sampled_from([0, 1, 0x8001]),
              st.integers(0, 127), small_bytes),
    st.builds(lambda f, v, e: OxmTlv(f, v, None, OxmClass.EXPERIMENTER, e), st.integers(0, 127),
              small_bytes, u32),
    st.builds(lambda f, v, e: OxmTlv(f, v, v[::-1], OxmClass.EXPERIMENTER, e), st.integers(0, 127),
              small_bytes, u32),
)


def matches(osken_safe: bool = False, max_size: int = 6) -> st.SearchStrategy[Match]:
    tlv = basic_tlv if osken_safe else st.one_of(basic_tlv, basic_tlv, other_tlv)
    return st.lists(tlv, max_size=max_size, unique_by=lambda t: (t.oxm_class, t.field)).map(
        lambda fs: Match(tuple(fs)))


def actions(osken_safe: bool = False) -> st.SearchStrategy[A.Action]:
    return st.one_of(
        st.builds(A.Output, u32, u16),
        *(st.just(cls()) for cls in (A.CopyTtlOut, A.CopyTtlIn, A.DecMplsTtl, A.PopVlan,
                                     A.DecNwTtl, A.PopPbb)),
        st.builds(A.SetMplsTtl, u8), st.builds(A.SetNwTtl, u8),
        *(st.builds(cls, u16) for cls in (A.PushVlan, A.PushMpls, A.PopMpls, A.PushPbb)),
        st.builds(A.SetQueue, u32), st.builds(A.Group, u32),
        # os-ken refuses a mask in a set-field, as OpenFlow 1.3 does
        st.builds(A.SetField, unmasked_tlv if osken_safe else st.one_of(basic_tlv, other_tlv)),
        st.builds(A.ExperimenterAction, experimenter_id if osken_safe else u32, aligned_bytes(8)),
    )


def action_lists(osken_safe: bool = False, max_size: int = 5) -> st.SearchStrategy:
    return st.lists(actions(osken_safe), max_size=max_size).map(tuple)


def instructions(osken_safe: bool = False) -> st.SearchStrategy[I.Instruction]:
    options = [
        st.builds(I.GotoTable, u8), st.builds(I.WriteMetadata, u64, u64),
        st.builds(I.WriteActions, action_lists(osken_safe)),
        st.builds(I.ApplyActions, action_lists(osken_safe)),
        st.just(I.ClearActions()), st.builds(I.Meter, u32),
    ]
    if not osken_safe:
        options.append(st.builds(I.ExperimenterInstruction, u32, aligned_bytes(8)))
    return st.one_of(options)


def instruction_lists(osken_safe: bool = False) -> st.SearchStrategy:
    return st.lists(instructions(osken_safe), max_size=4).map(tuple)


def buckets(osken_safe: bool = False) -> st.SearchStrategy[Bucket]:
    return st.builds(Bucket, action_lists(osken_safe, 3), u16, u32, u32)


def bands(osken_safe: bool = False) -> st.SearchStrategy:
    experimenter = (st.builds(ExperimenterBand, u32, u32, u32) if osken_safe
                    else st.builds(ExperimenterBand, u32, u32, u32, small_bytes))
    return st.one_of(st.builds(DropBand, u32, u32), st.builds(DscpRemarkBand, u32, u32, u8),
                     experimenter)


mac = st.binary(min_size=6, max_size=6)
name16 = st.binary(max_size=16).map(lambda b: b.rstrip(b"\0"))
ports = st.builds(Port, u32, mac, name16, u32, u32, u32, u32, u32, u32, u32, u32)



def queues(osken_safe: bool = False) -> st.SearchStrategy[PacketQueue]:
    """Queues; os-ken loops forever on a property type it does not know, so ``osken_safe``
    leaves those out."""
    props = [
        st.builds(QueueProp, st.sampled_from([QueueProperty.MIN_RATE, QueueProperty.MAX_RATE]),
                  u16),
        st.builds(lambda e, d: QueueProp(QueueProperty.EXPERIMENTER, experimenter=e, data=d), u32,
                  small_bytes),
    ]
    if not osken_safe:
        props.append(st.builds(lambda p, d: QueueProp(p, data=d),
                               u16.filter(lambda p: p not in set(QueueProperty)), small_bytes))
    return st.builds(PacketQueue, u32, u32, st.lists(st.one_of(props), max_size=3).map(tuple))


def _oxm_id(osken_safe: bool) -> st.SearchStrategy[OxmId]:
    basic = st.builds(lambda f, m: OxmId((OxmClass.OPENFLOW_BASIC << 16) | (f.field << 9)
                                         | (int(m) << 8) | f.size * (2 if m else 1)),
                      any_field, st.booleans())
    if osken_safe:  # os-ken sends an OXM ID's length as 0 (and reads it as sent)
        return st.builds(lambda f, m: OxmId((OxmClass.OPENFLOW_BASIC << 16) | (f.field << 9)
                                            | (int(m) << 8)), any_field, st.booleans())
    return st.one_of(basic, u32.filter(lambda h: h >> 16 != OxmClass.EXPERIMENTER).map(OxmId),
                     st.builds(lambda f, e: OxmId((OxmClass.EXPERIMENTER << 16) | f << 9 | 4, e),
                               st.integers(0, 127), u32))


def table_feature_props(osken_safe: bool = False) -> st.SearchStrategy[TableFeatureProp]:
    T = TableFeaturePropType
    type_ids = st.lists(st.builds(TypeId, u16.filter(lambda t: t != 0xFFFF)), max_size=5)
    return st.one_of(
        st.builds(lambda t, ids: TableFeatureProp(t, ids=tuple(ids)),
                  st.sampled_from(sorted(INSTRUCTION_PROPS | ACTION_PROPS)), type_ids),
        st.builds(lambda t, ids: TableFeatureProp(t, table_ids=tuple(ids)),
                  st.sampled_from(sorted(NEXT_TABLES_PROPS)), st.lists(u8, max_size=8)),
        st.builds(lambda t, ids: TableFeatureProp(t, oxm_ids=tuple(ids)),
                  st.sampled_from(sorted(OXM_PROPS)), st.lists(_oxm_id(osken_safe), max_size=5)),
        st.builds(lambda t, e, x, d: TableFeatureProp(t, experimenter=e, exp_type=x, data=d),
                  st.sampled_from(sorted(EXPERIMENTER_PROPS)), u32, u32,
                  st.just(b"") if osken_safe else small_bytes),
        *([] if osken_safe else [st.builds(
            lambda ids: TableFeatureProp(T.WRITE_ACTIONS, ids=tuple(ids)),
            st.lists(st.builds(TypeId, u16, small_bytes), max_size=3))]),
    )


name32 = st.binary(max_size=32).map(lambda b: b.rstrip(b"\0"))


def table_features(osken_safe: bool = False) -> st.SearchStrategy[TableFeatures]:
    return st.builds(TableFeatures, u8, name32, u64, u64, u32, u32,
                     st.lists(table_feature_props(osken_safe), max_size=4).map(tuple))


def _tuple_of(s: st.SearchStrategy, max_size: int = 3) -> st.SearchStrategy[tuple]:
    return st.lists(s, max_size=max_size).map(tuple)


counters = st.builds(MP.Counter, u64, u64)
desc256 = st.binary(max_size=256).map(lambda b: b.rstrip(b"\0"))


def request_bodies(osken_safe: bool = False) -> dict[type, st.SearchStrategy]:
    flow_select = {"table_id": u8, "out_port": u32, "out_group": u32, "cookie": u64,
                   "cookie_mask": u64, "match": matches(osken_safe)}
    return {
        MP.DescRequest: st.just(MP.DescRequest()),
        MP.FlowStatsRequest: st.builds(MP.FlowStatsRequest, **flow_select),
        MP.AggregateStatsRequest: st.builds(MP.AggregateStatsRequest, **flow_select),
        MP.TableStatsRequest: st.just(MP.TableStatsRequest()),
        MP.PortStatsRequest: st.builds(MP.PortStatsRequest, u32),
        MP.QueueStatsRequest: st.builds(MP.QueueStatsRequest, u32, u32),
        MP.GroupStatsRequest: st.builds(MP.GroupStatsRequest, u32),
        MP.GroupDescRequest: st.just(MP.GroupDescRequest()),
        MP.GroupFeaturesRequest: st.just(MP.GroupFeaturesRequest()),
        MP.MeterStatsRequest: st.builds(MP.MeterStatsRequest, u32),
        MP.MeterConfigRequest: st.builds(MP.MeterConfigRequest, u32),
        MP.MeterFeaturesRequest: st.just(MP.MeterFeaturesRequest()),
        MP.TableFeaturesRequest: st.builds(MP.TableFeaturesRequest,
                                           _tuple_of(table_features(osken_safe), 2)),
        MP.PortDescRequest: st.just(MP.PortDescRequest()),
        MP.ExperimenterMultipart: st.builds(MP.ExperimenterMultipart, experimenter_id, u32,
                                            small_bytes),
    }


def flow_stats(osken_safe: bool = False) -> st.SearchStrategy[MP.FlowStats]:
    return st.builds(MP.FlowStats, u8, u32, u32, u16, u16, u16, u16, u64, u64, u64,
                     matches(osken_safe), instruction_lists(osken_safe))


def reply_bodies(osken_safe: bool = False) -> dict[type, st.SearchStrategy]:
    return {
        MP.DescReply: st.builds(MP.DescReply, desc256, desc256, desc256,
                                st.binary(max_size=32).map(lambda b: b.rstrip(b"\0")), desc256),
        MP.FlowStatsReply: st.builds(MP.FlowStatsReply, _tuple_of(flow_stats(osken_safe))),
        MP.AggregateStatsReply: st.builds(MP.AggregateStatsReply, u64, u64, u32),
        MP.TableStatsReply: st.builds(MP.TableStatsReply,
                                      _tuple_of(st.builds(MP.TableStats, u8, u32, u64, u64))),
        MP.PortStatsReply: st.builds(MP.PortStatsReply, _tuple_of(st.builds(
            MP.PortStats, u32, *[u64] * 12, u32, u32))),
        MP.QueueStatsReply: st.builds(MP.QueueStatsReply, _tuple_of(st.builds(
            MP.QueueStats, u32, u32, u64, u64, u64, u32, u32))),
        MP.GroupStatsReply: st.builds(MP.GroupStatsReply, _tuple_of(st.builds(
            MP.GroupStats, u32, u32, u64, u64, u32, u32, _tuple_of(counters)))),
        MP.GroupDescReply: st.builds(MP.GroupDescReply, _tuple_of(st.builds(
            MP.GroupDesc, u8, u32, _tuple_of(buckets(osken_safe), 2)))),
        MP.GroupFeaturesReply: st.builds(MP.GroupFeaturesReply, u32, u32,
                                         st.tuples(u32, u32, u32, u32),
                                         st.tuples(u32, u32, u32, u32)),
        MP.MeterStatsReply: st.builds(MP.MeterStatsReply, _tuple_of(st.builds(
            MP.MeterStats, u32, u32, u64, u64, u32, u32, _tuple_of(counters)))),
        MP.MeterConfigReply: st.builds(MP.MeterConfigReply, _tuple_of(st.builds(
            MP.MeterConfig, u16, u32, _tuple_of(bands(osken_safe))))),
        MP.MeterFeaturesReply: st.builds(MP.MeterFeaturesReply, u32, u32, u32, u8, u8),
        MP.TableFeaturesReply: st.builds(MP.TableFeaturesReply,
                                         _tuple_of(table_features(osken_safe), 2)),
        MP.PortDescReply: st.builds(MP.PortDescReply, _tuple_of(ports)),
        # os-ken reads an experimenter reply as if it were 16 bytes long: 8 of data only
        MP.ExperimenterMultipart: st.builds(MP.ExperimenterMultipart, experimenter_id, u32,
                                            st.binary(min_size=8, max_size=8) if osken_safe
                                            else small_bytes),
    }


def _hello_elements(osken_safe: bool) -> st.SearchStrategy:
    if osken_safe:  # os-ken loops on an element's padding and reads bits 0-30 of one word
        return st.frozensets(st.integers(1, 30), min_size=1).map(
            lambda v: (M.VersionBitmap.of(v),))
    minimal = st.frozensets(st.integers(1, 70), min_size=1).map(M.VersionBitmap.of)
    bitmap = st.lists(u32, max_size=3).map(lambda w: M.VersionBitmap(tuple(w)))
    other = st.builds(M.HelloElement, u16.filter(lambda t: t != HelloElemType.VERSIONBITMAP),
                      small_bytes)
    return st.lists(st.one_of(bitmap, minimal, other), max_size=3).map(tuple)


def message_strategies(osken_safe: bool = False) -> dict[type, st.SearchStrategy]:
    """A strategy per message class (two for multipart: one per body class inside)."""
    xid = {"xid": u32}
    s = osken_safe
    async_masks = st.tuples(u32, u32)

    def error(err_type: int, code: int, data: bytes, exp: int, x: int) -> M.ErrorMsg:
        return M.ErrorMsg(err_type, code, data, exp if err_type == 0xFFFF else None, xid=x)

    return {
        M.Hello: st.builds(M.Hello, _hello_elements(s), **xid),
        M.ErrorMsg: st.builds(error, st.sampled_from([0, 1, 4, 13, 0xFFFF]) | u16, u16, small_bytes,
                              u32, u32),
        M.EchoRequest: st.builds(M.EchoRequest, small_bytes, **xid),
        M.EchoReply: st.builds(M.EchoReply, small_bytes, **xid),
        M.Experimenter: st.builds(M.Experimenter, experimenter_id, u32, small_bytes, **xid),
        M.FeaturesRequest: st.builds(M.FeaturesRequest, **xid),
        M.FeaturesReply: st.builds(M.FeaturesReply, u64, u32, u8, u8, u32,
                                   st.just(0) if s else u32, **xid),
        M.GetConfigRequest: st.builds(M.GetConfigRequest, **xid),
        M.GetConfigReply: st.builds(M.GetConfigReply, u16, u16, **xid),
        M.SetConfig: st.builds(M.SetConfig, u16, u16, **xid),
        # os-ken cuts the data to total_len (what a packet-in's total_len is: the frame's length)
        M.PacketIn: st.builds(lambda buffer_id, extra, reason, table, cookie, match, data, xid:
                              M.PacketIn(buffer_id, len(data) + extra, reason, table, cookie,
                                         match, data, xid=xid),
                              u32, st.integers(0, 1500), u8, u8, u64, matches(s), small_bytes,
                              u32),
        M.FlowRemoved: st.builds(M.FlowRemoved, u64, u16, u8, u8, u32, u32, u16, u16, u64, u64,
                                 matches(s), **xid),
        M.PortStatus: st.builds(M.PortStatus, u8, ports, **xid),
        # os-ken sends data only with OFP_NO_BUFFER, as the specification means it, and
        # writes its fixed part over the data of a packet-out without actions
        M.PacketOut: (st.builds(M.PacketOut, st.just(0xFFFFFFFF), u32,
                                action_lists(s).filter(bool), small_bytes, **xid)
                      | st.builds(M.PacketOut, u32, u32, action_lists(s), **xid)) if s
        else st.builds(M.PacketOut, u32, u32, action_lists(s), small_bytes, **xid),
        M.FlowMod: st.builds(M.FlowMod, u64, u64, u8, u8, u16, u16, u16, u32, u32, u32, u16,
                             matches(s), instruction_lists(s), **xid),
        M.GroupMod: st.builds(M.GroupMod, u16, u8, u32, _tuple_of(buckets(s)), **xid),
        M.PortMod: st.builds(M.PortMod, u32, mac, u32, u32, u32, **xid),
        M.TableMod: st.builds(M.TableMod, u8, u32, **xid),
        M.MultipartRequest: st.builds(M.MultipartRequest, st.one_of(*request_bodies(s).values()),
                                      u16, **xid),
        M.MultipartReply: st.builds(M.MultipartReply, st.one_of(*reply_bodies(s).values()), u16,
                                    **xid),
        M.BarrierRequest: st.builds(M.BarrierRequest, **xid),
        M.BarrierReply: st.builds(M.BarrierReply, **xid),
        M.QueueGetConfigRequest: st.builds(M.QueueGetConfigRequest, u32, **xid),
        M.QueueGetConfigReply: st.builds(M.QueueGetConfigReply, u32, _tuple_of(queues(s)), **xid),
        M.RoleRequest: st.builds(M.RoleRequest, u32, u64, **xid),
        M.RoleReply: st.builds(M.RoleReply, u32, u64, **xid),
        M.GetAsyncRequest: st.builds(M.GetAsyncRequest, **xid),
        M.GetAsyncReply: st.builds(M.GetAsyncReply, async_masks, async_masks, async_masks, **xid),
        M.SetAsync: st.builds(M.SetAsync, async_masks, async_masks, async_masks, **xid),
        M.MeterMod: st.builds(M.MeterMod, u16, u16, u32, _tuple_of(bands(s)), **xid),
    }


def any_message(osken_safe: bool = False) -> st.SearchStrategy[M.Message]:
    return st.one_of(*message_strategies(osken_safe).values())
