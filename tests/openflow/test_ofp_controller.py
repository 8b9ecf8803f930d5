"""The controller role's engines: the channel (:mod:`fata_openflow_switch.controller`) and
the learning-switch application (:mod:`fata_openflow_switch.l2_controller`), driven by the
bytes a switch would send, in OpenFlow 1.0 and 1.3.  Every command the controller sends is
compared byte for byte with what os-ken (the field's codec, not ours) serializes for the
same command, or read back by os-ken's parser; the switch's side of OpenFlow 1.0 is packed
with os-ken's layout strings."""

from __future__ import annotations

import struct

import pytest
from fata_openflow_switch import messages as M
from fata_openflow_switch import of10
from fata_openflow_switch.controller import (
    Controller,
    Datapath,
    DatapathJoin,
    DatapathLeave,
    PacketInEvent,
    State,
    SwitchError,
)
from fata_openflow_switch.l2_controller import L2Learning
from fata_openflow_switch.ofp_const import OFP_NO_BUFFER
from fata_openflow_switch.oxm import Match, oxm
from hypothesis import given, settings
from hypothesis import strategies as st

os_ken = pytest.importorskip("os_ken", reason="os-ken parses what the controller sends: pip "
                             "install -e 'appliances/openflow_switch[test]'", exc_type=ImportError)

from os_ken.ofproto import ofproto_parser  # noqa: E402
from os_ken.ofproto import ofproto_v1_0 as ofp10  # noqa: E402
from os_ken.ofproto import ofproto_v1_0_parser as p10  # noqa: E402
from os_ken.ofproto import ofproto_v1_3 as ofp13  # noqa: E402
from os_ken.ofproto import ofproto_v1_3_parser as p13  # noqa: E402

A, B, C = (bytes.fromhex(f"02000000000{n}") for n in "abc")
BROADCAST = b"\xff" * 6


class _Dp:
    def __init__(self, ofproto, parser) -> None:
        self.ofproto, self.ofproto_parser, self.id = ofproto, parser, 1


DP10, DP13 = _Dp(ofp10, p10), _Dp(ofp13, p13)


def split(data: bytes) -> list[bytes]:
    """The messages in ``data``."""
    out = []
    while data:
        length = struct.unpack_from("!H", data, 2)[0]
        out.append(data[:length])
        data = data[length:]
    return out


def parse_all(data: bytes, dp) -> list:
    """Every message in ``data``, parsed by os-ken (None where it has no parser)."""
    return [ofproto_parser.msg(dp, *ofproto_parser.header(raw), raw) for raw in split(data)]


def same_as_osken(raw: bytes, theirs) -> None:
    """``raw`` is what os-ken serializes for the message ``theirs`` (with raw's xid)."""
    theirs.set_xid(struct.unpack_from("!I", raw, 4)[0])
    theirs.serialize()
    assert raw == bytes(theirs.buf), (raw.hex(), bytes(theirs.buf).hex())


def frame(dst: bytes, src: bytes) -> bytes:
    return dst + src + b"\x08\x00" + bytes(46)


def hello(version: int) -> bytes:
    return struct.pack("!BBHI", version, 0, 8, 1)


def features10(dpid: int) -> bytes:
    ports = [of10.PhyPort(n, bytes([2, 0, 0, 0, 1, n]), f"eth{n}") for n in (1, 2, 3)]
    return of10.features_reply(2, dpid, ports)


def features13(dpid: int) -> bytes:
    return M.FeaturesReply(dpid, n_buffers=256, n_tables=254, xid=2).encode()


def packet_in13(in_port: int, data: bytes, buffer_id: int = OFP_NO_BUFFER) -> bytes:
    return M.PacketIn(buffer_id, len(data), 0, 0, 0, Match((oxm("in_port", in_port),)), data,
                      xid=9).encode()


def joined(version: int, dpid: int = 0x1234) -> tuple[Controller, Datapath, L2Learning]:
    app = L2Learning()
    controller = Controller([app])
    dp = controller.connect()
    hello_out = dp.data_to_send()
    assert M.decode_message(hello_out).versions == {1, 4}  # our HELLO offers both
    sent = controller.receive(dp, hello(version), 0.0)
    assert sent[:2] == bytes([version, 5]) and len(sent) == 8  # FEATURES_REQUEST
    sent = controller.receive(dp, features10(dpid) if version == 1 else features13(dpid), 0.0)
    assert dp.state is State.READY and dp.datapath_id == dpid and dp.version == version
    if version == 4:  # the table-miss flow, to the controller, unbuffered
        (mod,) = parse_all(sent, DP13)
        assert isinstance(mod, p13.OFPFlowMod) and mod.priority == 0 and not mod.match.fields
        (inst,) = mod.instructions
        assert inst.actions[0].port == ofp13.OFPP_CONTROLLER
        assert inst.actions[0].max_len == ofp13.OFPCML_NO_BUFFER
    else:
        assert sent == b"" and dp.ports == (1, 2, 3)
    return controller, dp, app


def out10(port: int):
    return p10.OFPActionOutput(port, max_len=0)


def mod10(in_port: int, dst: bytes, port: int, buffer_id: int):
    return p10.OFPFlowMod(DP10, p10.OFPMatch(in_port=in_port, dl_dst=dst), 0, ofp10.OFPFC_ADD,
                          buffer_id=buffer_id, actions=[out10(port)])


def test_openflow_10_learning_floods_then_installs_flows_as_os_ken_would() -> None:
    controller, dp, app = joined(1)
    (flood,) = split(controller.receive(dp, of10.packet_in(3, 77, 1, frame(B, A)), 1.0))
    same_as_osken(flood, p10.OFPPacketOut(DP10, 77, 1, [out10(ofp10.OFPP_FLOOD)], None))
    (mod,) = split(controller.receive(dp, of10.packet_in(4, 78, 2, frame(A, B)), 1.0))
    same_as_osken(mod, mod10(2, A, 1, 78))
    # unbuffered: the flow, then the frame itself
    data = frame(A, B)
    mod, sent = split(controller.receive(dp, of10.packet_in(5, OFP_NO_BUFFER, 2, data), 1.0))
    same_as_osken(mod, mod10(2, A, 1, OFP_NO_BUFFER))
    same_as_osken(sent, p10.OFPPacketOut(DP10, OFP_NO_BUFFER, 2, [out10(1)], data))
    # behind its own port: dropped, nothing sent
    assert controller.receive(dp, of10.packet_in(6, 79, 1, frame(A, C)), 1.0) == b""
    assert (app.installed, app.flooded, app.dropped) == (2, 1, 1)


def test_openflow_13_learning_installs_in_port_and_eth_dst_flows() -> None:
    controller, dp, app = joined(4)
    (flood,) = split(controller.receive(dp, packet_in13(1, frame(BROADCAST, A)), 1.0))
    same_as_osken(flood, p13.OFPPacketOut(DP13, OFP_NO_BUFFER, 1, [
        p13.OFPActionOutput(ofp13.OFPP_FLOOD, 0)], frame(BROADCAST, A)))
    out = controller.receive(dp, packet_in13(2, frame(A, B), buffer_id=5), 1.0)
    (mod,) = parse_all(out, DP13)
    assert isinstance(mod, p13.OFPFlowMod) and mod.buffer_id == 5
    assert mod.match["in_port"] == 2 and mod.match["eth_dst"] == "02:00:00:00:00:0a"
    assert mod.instructions[0].actions[0].port == 1
    same_as_osken(out, p13.OFPFlowMod(
        DP13, buffer_id=5, out_port=ofp13.OFPP_ANY, out_group=ofp13.OFPG_ANY,
        match=p13.OFPMatch(in_port=2, eth_dst="02:00:00:00:00:0a"),
        instructions=[p13.OFPInstructionActions(ofp13.OFPIT_APPLY_ACTIONS,
                                                [p13.OFPActionOutput(1)])]))
    assert app.installed == 1 and app.flooded == 1


def test_learned_addresses_age_on_the_events_clock() -> None:
    controller, dp, _ = joined(1)
    controller.receive(dp, of10.packet_in(1, 1, 1, frame(B, A)), 0.0)
    (mod,) = split(controller.receive(dp, of10.packet_in(2, 2, 2, frame(A, B)), 299.0))
    same_as_osken(mod, mod10(2, A, 1, 2))
    # A last seen at 0: gone at 300 (learning.py's 300 s default), so flooded again
    (out,) = split(controller.receive(dp, of10.packet_in(3, 3, 2, frame(A, B)), 300.0))
    same_as_osken(out, p10.OFPPacketOut(DP10, 3, 2, [out10(ofp10.OFPP_FLOOD)], None))


def test_echo_errors_and_leaving() -> None:
    events: list = []

    class Recorder:
        def datapath_join(self, e):
            events.append(e)

        def datapath_leave(self, e):
            events.append(e)

        def switch_error(self, e):
            events.append(e)

    controller = Controller([Recorder()])
    dp = controller.connect()
    controller.receive(dp, hello(4), 0.0)
    controller.receive(dp, features13(7), 0.0)
    assert isinstance(events[-1], DatapathJoin) and events[-1].datapath is dp
    echo = M.EchoRequest(b"ping", xid=42).encode()
    reply = M.decode_message(controller.receive(dp, echo, 0.0))
    assert isinstance(reply, M.EchoReply) and reply.xid == 42 and reply.data == b"ping"
    error = M.ErrorMsg(2, 4, b"oops", xid=3).encode()
    assert controller.receive(dp, error, 0.0) == b""
    assert isinstance(events[-1], SwitchError) and (events[-1].error_type, events[-1].code) == (2, 4)
    controller.disconnect(dp, "closed by the switch")
    assert isinstance(events[-1], DatapathLeave) and events[-1].reason == "closed by the switch"
    assert not controller.datapaths


def test_a_switch_that_never_joined_never_leaves() -> None:
    seen: list = []

    class Recorder:
        def datapath_leave(self, e):
            seen.append(e)

    controller = Controller([Recorder()])
    dp = controller.connect()
    dp.data_to_send()
    out = controller.receive(dp, M.FeaturesRequest(xid=1).encode(), 0.0)  # not a HELLO
    assert dp.state is State.CLOSED and out == b""
    controller.disconnect(dp, "gone")
    assert seen == [] and not controller.datapaths


def test_no_common_version_is_refused_with_hello_failed() -> None:
    controller = Controller([L2Learning()])
    dp = controller.connect()
    dp.data_to_send()
    bitmap_only_5 = M.Hello((M.VersionBitmap.of({5}),), xid=1).encode(5)
    out = controller.receive(dp, bitmap_only_5, 0.0)
    (err,) = parse_all(out, _Dp(__import__("os_ken.ofproto.ofproto_v1_4", fromlist=["x"]),
                                __import__("os_ken.ofproto.ofproto_v1_4_parser", fromlist=["x"])))
    assert err.type == 0 and err.code == 0  # OFPET_HELLO_FAILED, OFPHFC_INCOMPATIBLE
    assert dp.state is State.CLOSED


def test_bytes_in_any_pieces_give_the_same_commands() -> None:
    stream = (hello(1) + features10(9) + of10.packet_in(1, 1, 1, frame(B, A))
              + of10.packet_in(2, 2, 2, frame(A, B)))
    whole_c, whole = Controller([L2Learning()]), None
    whole = whole_c.connect()
    whole.data_to_send()
    expected = whole_c.receive(whole, stream, 0.0)
    split_c = Controller([L2Learning()])
    split_dp = split_c.connect()
    split_dp.data_to_send()
    got = b"".join(split_c.receive(split_dp, stream[i:i + 1], 0.0) for i in range(len(stream)))
    assert got == expected and len(split(got)) == 3  # features request, packet out, flow mod


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.sampled_from([1, 4]))
def test_garbage_after_the_handshake_never_raises(data: bytes, version: int) -> None:
    controller, dp, _ = joined(version)
    controller.receive(dp, data, 1.0)
    # A stream that can no longer be framed closes the channel; otherwise it stays open.
    assert dp.state in (State.READY, State.CLOSED)


def test_switch_messages_laid_out_by_os_ken_constants_are_understood() -> None:
    """The switch's half of OpenFlow 1.0 packed with os-ken's layout strings (its 1.0 code
    parses these messages but serializes none of them), not with ours."""
    controller = Controller([L2Learning()])
    dp = controller.connect()
    dp.data_to_send()
    controller.receive(dp, hello(1), 0.0)
    port = struct.pack(ofp10.OFP_PHY_PORT_PACK_STR, 7, bytes([2, 0, 0, 0, 0, 7]), b"eth7",
                       0, 0, 0, 0, 0, 0)
    body = struct.pack(ofp10.OFP_SWITCH_FEATURES_PACK_STR, 0xABC, 256, 1, 0, 1) + port
    header = struct.pack(ofp10.OFP_HEADER_PACK_STR, 1, ofp10.OFPT_FEATURES_REPLY, 8 + len(body), 5)
    controller.receive(dp, header + body, 0.0)
    assert dp.datapath_id == 0xABC and dp.n_buffers == 256 and dp.ports == (7,)
    data = frame(B, A)
    body = struct.pack(ofp10.OFP_PACKET_IN_PACK_STR, 3, len(data), 7, 0) + data
    header = struct.pack(ofp10.OFP_HEADER_PACK_STR, 1, ofp10.OFPT_PACKET_IN, 8 + len(body), 8)
    (event,) = dp.receive_data(header + body, 0.0)
    assert isinstance(event, PacketInEvent)
    assert (event.buffer_id, event.total_len, event.in_port, event.data) == (3, 60, 7, data)
