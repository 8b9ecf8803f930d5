"""Every OpenFlow 1.3 message through the codec: round trips exact to the byte, the
specification's sizes, and the error each malformed structure is answered with."""

from __future__ import annotations

import struct

import pytest
from fata_openflow_switch import actions as A
from fata_openflow_switch import instructions as I
from fata_openflow_switch import messages as M
from fata_openflow_switch import multipart as MP
from fata_openflow_switch.actions import SetField, check_set_field
from fata_openflow_switch.buckets import Bucket
from fata_openflow_switch.meter_bands import DropBand, DscpRemarkBand
from fata_openflow_switch.ofp_const import (
    BadActionCode,
    BadInstructionCode,
    BadRequestCode,
    ErrorType,
    GroupModFailedCode,
    MeterModFailedCode,
    MsgType,
    OxmClass,
    TableFeaturePropType,
    TableFeaturesFailedCode,
    error_name,
)
from fata_openflow_switch.oxm import Match, OxmTlv, oxm
from fata_openflow_switch.port_desc import Port
from fata_openflow_switch.table_features import TableFeatureProp, TableFeatures, TypeId
from hypothesis import given, settings
from hypothesis import strategies as st

from ._strategies import message_strategies, reply_bodies, request_bodies

STRATEGIES = message_strategies()
BAD_ACTION = ErrorType.BAD_ACTION
BAD_INSTRUCTION = ErrorType.BAD_INSTRUCTION


def raw(msg_type: int, body: bytes, xid: int = 0x1234, version: int = 4) -> bytes:
    """A message from its parts, the header's length filled in."""
    return struct.pack("!BBHI", version, msg_type, 8 + len(body), xid) + body


def refused(data: bytes) -> tuple[int, int]:
    """The (type, code) ``data`` is refused with; its error carries the xid and 64 bytes."""
    result = M.decode_message(data)
    assert isinstance(result, M.Malformed), result
    assert result.error.xid == struct.unpack_from("!I", data, 4)[0]
    assert result.error.data == data[:64]
    return result.err


def test_every_message_type_has_a_class_and_a_strategy() -> None:
    assert sorted(M.MESSAGE_CLASSES) == sorted(MsgType)
    assert set(STRATEGIES) == set(M.MESSAGE_CLASSES.values())
    assert set(request_bodies()) == set(MP.REQUEST_BODIES.values())
    assert set(reply_bodies()) == set(MP.REPLY_BODIES.values())


@pytest.mark.parametrize("cls", list(STRATEGIES), ids=lambda c: c.__name__)
@settings(max_examples=40)
@given(data=st.data())
def test_every_message_round_trips_exactly(cls: type[M.Message], data: st.DataObject) -> None:
    msg = data.draw(STRATEGIES[cls])
    wire = msg.encode()
    assert struct.unpack_from("!BBH", wire) == (4, cls.msg_type, len(wire))
    decoded = M.decode_message(wire)
    assert decoded == msg
    assert decoded.encode() == wire


BODIES = [(M.MultipartRequest, b, s) for b, s in request_bodies().items()] + \
         [(M.MultipartReply, b, s) for b, s in reply_bodies().items()]


@pytest.mark.parametrize(("cls", "body", "strategy"), BODIES,
                         ids=[f"{c.__name__}-{b.__name__}" for c, b, _ in BODIES])
@settings(max_examples=30)
@given(data=st.data())
def test_every_multipart_body_round_trips_exactly(cls: type, body: type, strategy: st.SearchStrategy,
                                                 data: st.DataObject) -> None:
    msg = cls(data.draw(strategy), data.draw(st.integers(0, 0xFFFF)), xid=7)
    wire = msg.encode()
    assert struct.unpack_from("!H", wire, 8)[0] == body.mp_type
    assert M.decode_message(wire) == msg and M.decode_message(wire).encode() == wire


PORT = Port(1, b"\x02\x00\x00\x00\x00\x01", b"eth1")
SIZES = [  # the specification's OFP_ASSERTs: sizes of the fixed messages, header included
    (M.Hello(), 8), (M.FeaturesRequest(), 8), (M.FeaturesReply(1), 32), (M.GetConfigRequest(), 8),
    (M.GetConfigReply(), 12), (M.SetConfig(), 12), (M.PacketIn(0, 0, 0, 0, 0), 34),
    (M.FlowRemoved(0, 0, 0, 0, 0, 0, 0, 0, 0, 0), 56), (M.PortStatus(0, PORT), 80),
    (M.PacketOut(), 24), (M.FlowMod(), 56), (M.GroupMod(0, 0, 1), 16),
    (M.PortMod(1, bytes(6)), 40), (M.TableMod(0), 16), (M.BarrierRequest(), 8),
    (M.QueueGetConfigRequest(), 16), (M.QueueGetConfigReply(1), 16), (M.RoleRequest(1), 24),
    (M.GetAsyncReply(), 32), (M.SetAsync(), 32), (M.MeterMod(0, 1, 1), 16),
    (M.ErrorMsg(1, 6), 12), (M.Experimenter(1, 2), 16),
    (M.MultipartRequest(MP.DescRequest()), 16), (M.MultipartReply(MP.DescReply()), 16 + 1056),
    (M.MultipartRequest(MP.FlowStatsRequest()), 16 + 32 + 8),
    (M.MultipartReply(MP.AggregateStatsReply()), 16 + 24),
    (M.MultipartReply(MP.FlowStatsReply((MP.FlowStats(0, 0, 0, 0, 0, 0, 0, 0, 0, 0),))), 16 + 56),
    (M.MultipartReply(MP.TableStatsReply((MP.TableStats(0),))), 16 + 24),
    (M.MultipartReply(MP.PortStatsReply((MP.PortStats(1),))), 16 + 112),
    (M.MultipartReply(MP.QueueStatsReply((MP.QueueStats(1, 1),))), 16 + 40),
    (M.MultipartReply(MP.GroupStatsReply((MP.GroupStats(1),))), 16 + 40),
    (M.MultipartReply(MP.GroupFeaturesReply()), 16 + 40),
    (M.MultipartReply(MP.MeterStatsReply((MP.MeterStats(1),))), 16 + 40),
    (M.MultipartReply(MP.MeterFeaturesReply()), 16 + 16),
    (M.MultipartReply(MP.PortDescReply((PORT,))), 16 + 64),
    (M.MultipartReply(MP.TableFeaturesReply((TableFeatures(0, b"t"),))), 16 + 64),
]


@pytest.mark.parametrize(("msg", "size"), SIZES, ids=[type(m).__name__ for m, _ in SIZES])
def test_fixed_parts_have_the_specifications_sizes(msg: M.Message, size: int) -> None:
    assert len(msg.encode()) == size


BAD_LEN = (ErrorType.BAD_REQUEST, BadRequestCode.BAD_LEN)
# What else a byte too few or too many is: the structure it cuts or starts.
SHORT = {M.FlowMod: (ErrorType.BAD_MATCH, 1), M.FlowRemoved: (ErrorType.BAD_MATCH, 1),
         "FlowStatsRequest": (ErrorType.BAD_MATCH, 1),
         "TableFeaturesReply": (ErrorType.TABLE_FEATURES_FAILED, 3)}
LONG = {M.FlowMod: (BAD_INSTRUCTION, BadInstructionCode.BAD_LEN),
        M.GroupMod: (ErrorType.GROUP_MOD_FAILED, GroupModFailedCode.BAD_BUCKET),
        "TableFeaturesReply": (ErrorType.TABLE_FEATURES_FAILED, 3)}
FREE_TAIL = (M.ErrorMsg, M.Experimenter, M.PacketIn, M.PacketOut)  # end in data of any length


def _expected(table: dict, msg: M.Message) -> tuple[int, int]:
    key = type(msg.body).__name__ if isinstance(msg, M.MultipartReply | M.MultipartRequest) \
        else type(msg)
    return table.get(key, BAD_LEN)


def _relength(data: bytes) -> bytes:
    return data[:2] + struct.pack("!H", len(data)) + data[4:]


@pytest.mark.parametrize(("msg", "size"), SIZES, ids=[type(m).__name__ for m, _ in SIZES])
def test_a_byte_too_many_or_too_few_is_a_length_error(msg: M.Message, size: int) -> None:
    wire = msg.encode()
    if size > 8:
        assert refused(_relength(wire[:-1])) == _expected(SHORT, msg)
    if not isinstance(msg, FREE_TAIL):
        assert refused(_relength(wire + b"\0")) == _expected(LONG, msg)


def test_padding_is_written_as_zeros_and_read_past() -> None:
    clean = M.TableMod(3, 7, xid=1).encode()
    dirty = clean[:9] + b"\xff\xff\xff" + clean[12:]
    assert M.decode_message(dirty) == M.TableMod(3, 7, xid=1)
    assert M.decode_message(dirty).encode() == clean


def test_the_header_is_checked_before_the_body() -> None:
    barrier = raw(MsgType.BARRIER_REQUEST, b"")
    assert refused(barrier[:2] + b"\x00\x09" + barrier[4:]) == (1, BadRequestCode.BAD_LEN)
    assert refused(raw(30, b"")) == (1, BadRequestCode.BAD_TYPE)
    assert refused(raw(0xFF, b"")) == (1, BadRequestCode.BAD_TYPE)
    assert refused(raw(MsgType.BARRIER_REQUEST, b"", version=5)) == (1, BadRequestCode.BAD_VERSION)
    assert refused(raw(MsgType.ECHO_REQUEST, b"", version=1)) == (1, BadRequestCode.BAD_VERSION)
    hello6 = raw(MsgType.HELLO, M.VersionBitmap.of({4, 6}).encode(), version=6)
    assert M.decode_message(hello6).encode(6) == hello6  # a HELLO of any version is read


def test_error_messages_keep_the_experimenters() -> None:
    err = M.ErrorMsg(0xFFFF, 7, b"why", 0x00002320, xid=5)
    assert err.encode() == raw(MsgType.ERROR, bytes.fromhex("ffff0007" "00002320") + b"why", 5)
    assert M.decode_message(err.encode()) == err
    with pytest.raises(ValueError, match="experimenter"):
        M.ErrorMsg(1, 6, experimenter=1).encode()
    assert error_name(4, 9) == "BAD_MATCH/BAD_PREREQ" and error_name(99, 1) == "99/1"


def test_a_message_too_long_for_the_header_is_not_encoded() -> None:
    too_many = MP.PortStatsReply(tuple(MP.PortStats(i) for i in range(600)))  # 67,200 bytes
    with pytest.raises(ValueError, match="split a multipart reply"):
        M.MultipartReply(too_many).encode()


def test_a_version_bitmap_names_its_versions() -> None:
    assert M.VersionBitmap.of({1, 4}).bitmaps == (0b10010,)
    assert M.VersionBitmap.of({4, 33}).versions == frozenset({4, 33})
    assert M.Hello((M.VersionBitmap.of({4}),)).encode() == bytes.fromhex(
        "0400001000000000" "0001000800000010")
    assert M.Hello((M.HelloElement(9, b"abc"),)).versions is None


def _flow_mod_with_instructions(instructions: bytes) -> bytes:
    return raw(MsgType.FLOW_MOD, M.FlowMod(xid=0x1234).encode()[8:] + instructions)


def _apply(actions: bytes) -> bytes:
    """An apply-actions instruction holding ``actions`` (its length from theirs)."""
    return struct.pack("!HH4x", 4, 8 + len(actions)) + actions




@pytest.mark.parametrize(("actions", "err"), [
    (struct.pack("!HH4x", 1, 8), (BAD_ACTION, BadActionCode.BAD_TYPE)),  # 1 is OpenFlow 1.0's
    (struct.pack("!HH4x", 28, 8), (BAD_ACTION, BadActionCode.BAD_TYPE)),
    (struct.pack("!HHIH6x", 0, 12, 1, 0)[:12], (BAD_ACTION, BadActionCode.BAD_LEN)),  # not 8k
    (struct.pack("!HHI", 0, 8, 1), (BAD_ACTION, BadActionCode.BAD_LEN)),  # output is 16
    (struct.pack("!HH4x", 11, 16) + bytes(8), (BAD_ACTION, BadActionCode.BAD_LEN)),  # copy_ttl_out is 8
    (struct.pack("!HH4x", 18, 16), (BAD_ACTION, BadActionCode.BAD_LEN)),  # past the list
    (struct.pack("!HH4x", 18, 8) + b"\0\0\0\0", (BAD_ACTION, BadActionCode.BAD_LEN)),  # a tail
    (struct.pack("!HH", 18, 0) + bytes(4), (BAD_ACTION, BadActionCode.BAD_LEN)),  # zero length
    (struct.pack("!HHI", 25, 8, 0x80000A04), (BAD_ACTION, BadActionCode.BAD_SET_LEN)),  # OXM past it
    (struct.pack("!HHIH6x", 25, 16, 0x80000A01, 0), (BAD_ACTION, BadActionCode.BAD_SET_LEN)),
    (struct.pack("!HHIH6x8x", 25, 24, 0x80000A02, 0x800),
     (BAD_ACTION, BadActionCode.BAD_SET_LEN)),  # more than padding after the OXM
    (struct.pack("!HH", 0xFFFF, 8) + bytes(4), None),  # an experimenter action is kept
], ids=["of10-type", "unknown-type", "len-12", "short-output", "long-copy-ttl", "past-list",
        "tail", "zero-len", "oxm-past-action", "oxm-wrong-size", "oxm-then-more", "experimenter"])
def test_actions_the_codec_cannot_read(actions: bytes, err: tuple[int, int] | None) -> None:
    # in a packet-out, whose actions_len may be anything (an instruction's must be 8k)
    data = raw(MsgType.PACKET_OUT, struct.pack("!IIH6x", 0xFFFFFFFF, 0xFFFFFFFD, len(actions))
               + actions)
    if err is None:
        assert isinstance(M.decode_message(data), M.PacketOut)
    else:
        assert refused(data) == err
    if len(actions) % 8 == 0:  # the same inside an apply-actions instruction
        data = _flow_mod_with_instructions(_apply(actions))
        assert (isinstance(M.decode_message(data), M.FlowMod) if err is None
                else refused(data) == err)


@pytest.mark.parametrize(("instructions", "err"), [
    (struct.pack("!HHB3x", 7, 8, 0), (BAD_INSTRUCTION, BadInstructionCode.UNKNOWN_INST)),
    (struct.pack("!HHB3x", 0, 8, 0), (BAD_INSTRUCTION, BadInstructionCode.UNKNOWN_INST)),
    (struct.pack("!HHB3x", 1, 16, 0) + bytes(8), (BAD_INSTRUCTION, BadInstructionCode.BAD_LEN)),
    (struct.pack("!HH4xQ", 2, 16, 0), (BAD_INSTRUCTION, BadInstructionCode.BAD_LEN)),
    (struct.pack("!HH4x", 5, 16) + bytes(8), (BAD_INSTRUCTION, BadInstructionCode.BAD_LEN)),
    (struct.pack("!HHI", 6, 12, 1) + bytes(4), (BAD_INSTRUCTION, BadInstructionCode.BAD_LEN)),
    (struct.pack("!HHI", 6, 8, 1) + b"\0\0", (BAD_INSTRUCTION, BadInstructionCode.BAD_LEN)),
    (struct.pack("!HH4x", 3, 24) + bytes(8), (BAD_INSTRUCTION, BadInstructionCode.BAD_LEN)),
    (_apply(struct.pack("!HH4x", 1, 8)), (BAD_ACTION, BadActionCode.BAD_TYPE)),
], ids=["type-7", "type-0", "long-goto", "short-metadata", "long-clear", "meter-12", "tail",
        "past-list", "bad-action-inside"])
def test_instructions_the_codec_cannot_read(instructions: bytes, err: tuple[int, int]) -> None:
    assert refused(_flow_mod_with_instructions(instructions)) == err


def test_buckets_bands_and_table_features_have_their_own_errors() -> None:
    group = struct.pack("!HBxI", 0, 0, 1)
    assert refused(raw(MsgType.GROUP_MOD, group + struct.pack("!HHII4x", 8, 0, 0, 0))) == (
        ErrorType.GROUP_MOD_FAILED, GroupModFailedCode.BAD_BUCKET)
    assert refused(raw(MsgType.GROUP_MOD, group + struct.pack("!HHII4x", 32, 0, 0, 0))) == (
        ErrorType.GROUP_MOD_FAILED, GroupModFailedCode.BAD_BUCKET)
    assert refused(raw(MsgType.GROUP_MOD, group + b"\0\0\0")) == (
        ErrorType.GROUP_MOD_FAILED, GroupModFailedCode.BAD_BUCKET)
    meter = struct.pack("!HHI", 0, 1, 1)
    assert refused(raw(MsgType.METER_MOD, meter + struct.pack("!HHII4x", 3, 16, 1, 1))) == (
        ErrorType.METER_MOD_FAILED, MeterModFailedCode.BAD_BAND)
    assert refused(raw(MsgType.METER_MOD, meter + struct.pack("!HHII", 1, 12, 1, 1))) == (
        ErrorType.BAD_REQUEST, BadRequestCode.BAD_LEN)
    assert refused(raw(MsgType.METER_MOD, meter + struct.pack("!HHII4x", 1, 24, 1, 1))) == (
        ErrorType.BAD_REQUEST, BadRequestCode.BAD_LEN)
    mp = struct.pack("!HH4x", 12, 0)
    table = TableFeatures(0, b"t").encode()
    unknown_prop = struct.pack("!HH4x", 9, 4)
    entry = table[:0] + struct.pack("!H", len(table) + 8) + table[2:] + unknown_prop
    assert refused(raw(MsgType.MULTIPART_REQUEST, mp + entry)) == (
        ErrorType.TABLE_FEATURES_FAILED, TableFeaturesFailedCode.BAD_TYPE)
    long_prop = struct.pack("!HH4x", 2, 12)
    entry = struct.pack("!H", len(table) + 8) + table[2:] + long_prop
    assert refused(raw(MsgType.MULTIPART_REQUEST, mp + entry)) == (
        ErrorType.TABLE_FEATURES_FAILED, TableFeaturesFailedCode.BAD_LEN)
    assert refused(raw(MsgType.MULTIPART_REQUEST, mp + table[:40])) == (
        ErrorType.TABLE_FEATURES_FAILED, TableFeaturesFailedCode.BAD_LEN)
    assert refused(raw(MsgType.MULTIPART_REQUEST, struct.pack("!HH4x", 14, 0))) == (
        ErrorType.BAD_REQUEST, BadRequestCode.BAD_MULTIPART)
    assert refused(raw(MsgType.MULTIPART_REPLY, struct.pack("!HH4x", 3, 0) + bytes(23))) == (
        ErrorType.BAD_REQUEST, BadRequestCode.BAD_LEN)
    assert refused(raw(MsgType.PACKET_OUT, struct.pack("!IIH6x", 0, 0, 16) + bytes(8))) == (
        ErrorType.BAD_REQUEST, BadRequestCode.BAD_LEN)


def test_structures_keep_what_the_controller_sent() -> None:
    flow = M.FlowMod(
        cookie=0x1122, table_id=1, priority=7,
        match=Match((oxm("in_port", 2), oxm("eth_type", 0x86DD),
                     oxm("ipv6_src", bytes(15) + b"\x01", b"\xff" * 8 + bytes(8)))),
        instructions=(I.Meter(3), I.ApplyActions((A.PushVlan(0x8100),
                                                   SetField(oxm("vlan_vid", 0x1005)),
                                                   A.Output(5))),
                      I.ClearActions(), I.WriteActions((A.Group(9),)), I.WriteMetadata(1, 3),
                      I.GotoTable(2)),
        xid=99)
    assert M.decode_message(flow.encode()) == flow
    group = M.GroupMod(0, 1, 5, (Bucket((A.Output(1),), weight=3), Bucket((A.Output(2),), 1)))
    meter = M.MeterMod(0, 0b101, 4, (DropBand(1000, 10), DscpRemarkBand(2000, 20, 1)))
    tf = TableFeatures(0, b"table0", 1, 2, 3, 4, (
        TableFeatureProp(TableFeaturePropType.INSTRUCTIONS, ids=(TypeId(1), TypeId(4))),
        TableFeatureProp(TableFeaturePropType.NEXT_TABLES, table_ids=(1, 2, 3)),
    ))
    for msg in (group, meter, M.MultipartReply(MP.TableFeaturesReply((tf,)))):
        assert M.decode_message(msg.encode()) == msg
    # the properties' padding (next tables: 4 + 3 bytes, then 1 of zeros)
    assert tf.properties[1].encode() == bytes.fromhex("00020007010203" "00")


def test_set_field_checks_are_the_specifications() -> None:
    assert check_set_field(SetField(oxm("ipv4_dst", 1))) is None
    assert check_set_field(SetField(oxm("tunnel_id", 5))) is None
    for field in ("in_port", "in_phy_port", "metadata"):
        assert check_set_field(SetField(oxm(field, 1))) == (BAD_ACTION, BadActionCode.BAD_SET_TYPE)
    assert check_set_field(SetField(OxmTlv(3, bytes(6), None, OxmClass.NXM_1))) == (
        BAD_ACTION, BadActionCode.BAD_SET_TYPE)
    assert check_set_field(SetField(oxm("ipv4_dst", 1, 1))) == (
        BAD_ACTION, BadActionCode.BAD_SET_ARGUMENT)
    assert check_set_field(SetField(oxm("vlan_pcp", 8))) == (
        BAD_ACTION, BadActionCode.BAD_SET_ARGUMENT)
